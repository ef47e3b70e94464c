package daemon

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/testenv"
	"github.com/godwit-project/godwit/internal/vm"
)

// openAPIDoc is the part of the served document the tests read.
type openAPIDoc struct {
	Paths map[string]map[string]struct {
		OperationID string                    `json:"operationId"`
		Summary     string                    `json:"summary"`
		Description string                    `json:"description"`
		Tags        []string                  `json:"tags"`
		Security    *[]map[string][]string    `json:"security"`
		Responses   map[string]map[string]any `json:"responses"`
		RequestBody *struct {
			Content map[string]struct {
				Examples map[string]struct{ Value json.RawMessage } `json:"examples"`
			}
		} `json:"requestBody"`
	} `json:"paths"`
	Tags []struct {
		Name        string `json:"name"`
		Description string `json:"description"`
	} `json:"tags"`
	Components struct {
		Schemas map[string]struct {
			Examples []json.RawMessage `json:"examples"`
		} `json:"schemas"`
		Responses       map[string]any `json:"responses"`
		SecuritySchemes map[string]any `json:"securitySchemes"`
	} `json:"components"`
}

func servedOpenAPI(t *testing.T) (openAPIDoc, []byte) {
	t.Helper()
	td := newDaemon(t)
	status, _, body := td.do("GET", "/openapi.json", "")
	if status != 200 {
		t.Fatalf("/openapi.json: %d", status)
	}
	var doc openAPIDoc
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	return doc, body
}

// Every operation says what it does, who may call it and how it fails;
// the errors come from the operation's shape (errorStatuses).
func TestOpenAPIDocument(t *testing.T) {
	doc, _ := servedOpenAPI(t)
	tags := map[string]string{}
	for _, tg := range doc.Tags {
		tags[tg.Name] = tg.Description
	}
	n := 0
	for path, methods := range doc.Paths {
		for method, o := range methods {
			n++
			where := strings.ToUpper(method) + " " + path
			if o.OperationID == "" || o.Summary == "" || o.Description == "" {
				t.Errorf("%s: id %q, summary %q, description %q", where, o.OperationID, o.Summary, o.Description)
			}
			for _, tg := range o.Tags {
				if tags[tg] == "" {
					t.Errorf("%s: tag %s has no description", where, tg)
				}
			}
			if o.Security == nil {
				t.Errorf("%s: no security requirement", where)
			}
			if _, ok := o.Responses["default"]; ok {
				t.Errorf("%s: a default response instead of its errors", where)
			}
			var codes []int
			for c := range o.Responses {
				code, _ := strconv.Atoi(c)
				if code >= 400 {
					codes = append(codes, code)
				}
			}
			slices.Sort(codes)
			if !slices.Contains(codes, 500) {
				t.Errorf("%s: errors %v lack 500", where, codes)
			}
			if strings.Contains(path, "{") && !slices.Contains(codes, 404) {
				t.Errorf("%s: a path parameter but no 404 in %v", where, codes)
			}
		}
	}
	if n < 70 {
		t.Fatalf("only %d operations", n)
	}
	for id, want := range map[string][]int{
		"healthz":       {500},
		"get-vm":        {400, 401, 403, 404, 500, 503},
		"create-vm":     {400, 401, 403, 409, 413, 500, 503},
		"list-vms":      {400, 401, 403, 500, 503}, // ?host= can be malformed
		"peer-join":     {400, 409, 413, 500, 503},
		"delete-vm":     {400, 401, 403, 404, 409, 500, 503},
		"upload-volume": {400, 401, 403, 404, 409, 500, 503},
	} {
		var got []int
		for _, methods := range doc.Paths {
			for _, o := range methods {
				if o.OperationID != id {
					continue
				}
				for c := range o.Responses {
					if code, _ := strconv.Atoi(c); code >= 400 {
						got = append(got, code)
					}
				}
			}
		}
		slices.Sort(got)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s answers errors %v, want %v", id, got, want)
		}
	}
	for _, e := range apiErrors {
		if doc.Components.Responses[e.name] == nil {
			t.Errorf("no component response %s", e.name)
		}
	}
	for _, s := range []string{schemeToken, schemeClientCert, schemePeerCert} {
		if doc.Components.SecuritySchemes[s] == nil {
			t.Errorf("no security scheme %s", s)
		}
	}
}

// The VM spec examples are valid specs, shown on the schema and on the
// bodies of create and apply.
func TestOpenAPISpecExamples(t *testing.T) {
	doc, _ := servedOpenAPI(t)
	check := func(where string, raw json.RawMessage) {
		var s api.VMSpec
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&s); err != nil {
			t.Errorf("%s: %v", where, err)
			return
		}
		vm.Normalize(&s)
		if err := vm.ValidateStatic(s); err != nil {
			t.Errorf("%s: %v", where, err)
		}
	}
	ex := doc.Components.Schemas["VMSpec"].Examples
	if len(ex) == 0 {
		t.Error("the VMSpec schema has no examples")
	}
	for i, raw := range ex {
		check("VMSpec example "+strconv.Itoa(i), raw)
	}
	for _, m := range []struct{ path, method string }{{"/v1/vms", "post"}, {"/v1/vms/{name}", "put"}} {
		o := doc.Paths[m.path][m.method]
		if o.RequestBody == nil || len(o.RequestBody.Content["application/json"].Examples) != len(vmSpecExamples) {
			t.Errorf("%s %s: body examples %+v", m.method, m.path, o.RequestBody)
			continue
		}
		for name, e := range o.RequestBody.Content["application/json"].Examples {
			check(m.method+" "+m.path+" example "+name, e.Value)
		}
	}
}

// Redocly's linter (tools/openapi-lint, installed from its lockfile: npm
// ci there) finds no problem, error or warning, in the served document
// with the committed rules. It runs offline.
func TestOpenAPILint(t *testing.T) {
	dir := filepath.Join(testenv.RepoRoot(), "tools", "openapi-lint")
	redocly := filepath.Join(dir, "node_modules", ".bin", "redocly")
	testenv.RequireCommand(t, "node")
	if _, err := os.Stat(redocly); err != nil {
		testenv.Skip(t, "the OpenAPI linter is not installed (cd tools/openapi-lint && npm ci): "+err.Error())
	}
	_, body := servedOpenAPI(t)
	work := t.TempDir()
	for _, f := range []string{"redocly.yaml", ".redocly.lint-ignore.yaml"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(work, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(work, "openapi.json"), body, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(redocly, "lint", "--config", "redocly.yaml", "--format", "json", "openapi.json")
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "REDOCLY_TELEMETRY=off", "REDOCLY_SUPPRESS_UPDATE_NOTICE=true", "NO_COLOR=1")
	out, err := cmd.Output()
	var res struct {
		Totals   struct{ Errors, Warnings, Ignored int }
		Problems []struct {
			RuleID   string `json:"ruleId"`
			Severity string
			Message  string
			Location []struct{ Pointer string }
		}
	}
	if jerr := json.Unmarshal(out, &res); jerr != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("redocly lint: %v, output not JSON (%v):\n%s\n%s", err, jerr, out, stderr)
	}
	for _, p := range res.Problems {
		loc := ""
		if len(p.Location) > 0 {
			loc = p.Location[0].Pointer
		}
		t.Errorf("%s %s at %s: %s", p.Severity, p.RuleID, loc, p.Message)
	}
	if res.Totals.Errors+res.Totals.Warnings > 0 || err != nil {
		t.Fatalf("redocly lint: %d errors, %d warnings (%v)", res.Totals.Errors, res.Totals.Warnings, err)
	}
	t.Logf("redocly lint: no problems (%d explicitly ignored in .redocly.lint-ignore.yaml)", res.Totals.Ignored)
}
