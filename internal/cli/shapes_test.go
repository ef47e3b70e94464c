package cli

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
)

type thing struct {
	Name string `json:"name"`
	Size int    `json:"size"`
}

func testGlobals(output string, quiet bool) (*globals, *bytes.Buffer) {
	var out bytes.Buffer
	return &globals{output: output, quiet: quiet, out: &out, errOut: io.Discard}, &out
}

func thingListing(named bool) listing[thing] {
	l := listing[thing]{
		wrap:   func(ts []thing) any { return map[string][]thing{"things": ts} },
		header: []string{"NAME", "SIZE"},
		row:    func(t thing) []string { return []string{t.Name, strings.Repeat("#", t.Size)} },
	}
	if named {
		l.name = func(t thing) string { return "thing/" + t.Name }
	}
	return l
}

func TestListingPrint(t *testing.T) {
	things := []thing{{"a", 1}, {"bb", 3}}
	cases := []struct {
		output string
		quiet  bool
		named  bool
		want   string
	}{
		{"table", false, true, "NAME  SIZE\na     #\nbb    ###\n"},
		{"table", true, true, "thing/a\nthing/bb\n"},
		{"table", true, false, "NAME  SIZE\na     #\nbb    ###\n"}, // no names: --quiet changes nothing
		{"json", true, true, "{\n  \"things\": [\n    {\n      \"name\": \"a\",\n      \"size\": 1\n    },\n    {\n      \"name\": \"bb\",\n      \"size\": 3\n    }\n  ]\n}\n"},
		{"yaml", false, true, "things:\n  - name: a\n    size: 1\n  - name: bb\n    size: 3\n"},
	}
	for _, c := range cases {
		g, out := testGlobals(c.output, c.quiet)
		if err := thingListing(c.named).print(g, things); err != nil {
			t.Fatal(err)
		}
		if out.String() != c.want {
			t.Errorf("-o %s, quiet %t, named %t: got\n%s\nwant\n%s", c.output, c.quiet, c.named, out, c.want)
		}
	}
	g, out := testGlobals("table", false)
	if err := thingListing(true).print(g, nil); err != nil || out.String() != "NAME  SIZE\n" {
		t.Errorf("no items: %q, %v; want the header alone", out, err)
	}
	g, out = testGlobals("json", false)
	if err := thingListing(true).print(g, nil); err != nil || out.String() != "{\n  \"things\": null\n}\n" {
		t.Errorf("no items, json: %q, %v", out, err)
	}
}

func TestPrintObjectAndMade(t *testing.T) {
	show := func(w io.Writer, v thing) error {
		_, err := io.WriteString(w, "shown "+v.Name+"\n")
		return err
	}
	for output, want := range map[string]string{"table": "shown a\n", "json": "{\n  \"name\": \"a\",\n  \"size\": 1\n}\n", "yaml": "name: a\nsize: 1\n"} {
		g, out := testGlobals(output, true)
		if err := printObject(g, thing{"a", 1}, show); err != nil || out.String() != want {
			t.Errorf("printObject -o %s: %q, %v; want %q", output, out, err, want)
		}
	}
	for _, c := range []struct {
		output string
		quiet  bool
		want   string
	}{
		{"table", false, "thing a made\n"},
		{"table", true, "a\n"},
		{"json", true, "{\n  \"name\": \"a\",\n  \"size\": 1\n}\n"},
	} {
		g, out := testGlobals(c.output, c.quiet)
		if err := printMade(g, thing{"a", 1}, "a", func() { io.WriteString(g.out, "thing a made\n") }); err != nil || out.String() != c.want {
			t.Errorf("printMade -o %s quiet %t: %q, %v; want %q", c.output, c.quiet, out, err, c.want)
		}
	}
}

func TestDeleteRun(t *testing.T) {
	var got string
	del := func(_ *client.Client, _ context.Context, name string) error {
		got = name
		return nil
	}
	g, out := testGlobals("table", false)
	g.socket = filepath.Join(t.TempDir(), "s") // the client is made, never dialled
	cmd := &cobra.Command{}
	cmd.SetContext(context.Background())
	if err := deleteRun(g, "thing", "gone", del)(cmd, []string{"a"}); err != nil || got != "a" || out.String() != "thing a gone\n" {
		t.Errorf("deleteRun: called with %q, printed %q, %v", got, out, err)
	}
	g.quiet = true
	out.Reset()
	if err := deleteRun(g, "thing", "gone", del)(cmd, []string{"b"}); err != nil || got != "b" || out.Len() != 0 {
		t.Errorf("deleteRun --quiet: called with %q, printed %q, %v", got, out, err)
	}
	g.host = "https://h9:1" // no --tls-dir: no client, no call
	got = ""
	if err := deleteRun(g, "thing", "gone", del)(cmd, []string{"c"}); err == nil || got != "" {
		t.Errorf("deleteRun without a client: called with %q, err %v", got, err)
	}
}

func TestCompleteNames(t *testing.T) {
	d := &fakeDaemon{answers: map[string]any{"GET /v1/pools": api.PoolList{Pools: []api.Pool{{Name: "a", Type: "dir"}, {Name: "b", Type: "fs"}}}}}
	startFakeDaemon(t, d)
	g := &globals{socket: envOr("GODWIT_SOCKET", "")}
	c := completeNames(g, (*client.Client).ListPools, func(p api.Pool) string { return p.Name + "\t" + p.Type })
	names, dir := c(nil, []string{"x"}, "")
	if strings.Join(names, ",") != "a\tdir,b\tfs" || dir != cobra.ShellCompDirectiveNoFileComp {
		t.Errorf("completeNames = %q, %v", names, dir)
	}
	if names, dir := firstArg(c)(nil, []string{"x"}, ""); names != nil || dir != cobra.ShellCompDirectiveNoFileComp {
		t.Errorf("firstArg after the first argument = %q, %v; want none", names, dir)
	}
	if names, _ := firstArg(c)(nil, nil, ""); len(names) != 2 {
		t.Errorf("firstArg for the first argument = %q", names)
	}
	g.socket = filepath.Join(t.TempDir(), "nothing-here")
	if names, dir := c(nil, nil, ""); names != nil || dir != cobra.ShellCompDirectiveNoFileComp {
		t.Errorf("completeNames without a daemon = %q, %v; want none", names, dir)
	}
}
