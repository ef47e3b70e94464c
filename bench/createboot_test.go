package bench

import (
	"os"
	"strings"
	"testing"
)

func TestCreateBootRegistered(t *testing.T) {
	if _, ok := Lookup("create-boot"); !ok {
		t.Fatal("create-boot is not registered")
	}
}

func TestRewriteDomainXML(t *testing.T) {
	in, err := os.ReadFile("../internal/domainxml/testdata/kernel-tcg.xml")
	if err != nil {
		t.Fatal(err)
	}
	out, err := RewriteDomainXML(string(in), "bench-cb-x-virsh-1", "11111111-2222-4333-8444-555555555555", "/tmp/b/d.qcow2", "/tmp/b/d.log")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"<name>bench-cb-x-virsh-1</name>", "<uuid>11111111-2222-4333-8444-555555555555</uuid>",
		`<source file="/tmp/b/d.qcow2">`, `<log file="/tmp/b/d.log" append="on">`,
		"<kernel>/var/lib/godwit/guest/vmlinuz</kernel>", `<domain type="qemu">`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %s in\n%s", want, out)
		}
	}
	if strings.Contains(out, "godwit:owner") || strings.Contains(out, "metadata") {
		t.Errorf("godwit metadata kept:\n%s", out)
	}
}
