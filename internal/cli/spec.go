package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/godwit-project/godwit/api"
)

// readSpec reads a VM spec from a YAML (or JSON) file, "-" for stdin.
// Unknown fields are errors, reported with their line.
func readSpec(path string, stdin io.Reader) (api.VMSpec, error) {
	var spec api.VMSpec
	b, err := readInput(path, stdin)
	if err != nil {
		return spec, err
	}
	name := path
	if path == "-" {
		name = "stdin"
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return spec, fmt.Errorf("%s: the spec is empty", name)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return spec, fmt.Errorf("%s: %s", name, yamlError(err))
	}
	if err := checkSizes(&doc, ""); err != nil {
		return spec, fmt.Errorf("%s: %w", name, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&spec); err != nil {
		return spec, fmt.Errorf("%s: %s", name, yamlError(err))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return spec, fmt.Errorf("%s: holds more than one YAML document; one spec per file", name)
	}
	return spec, nil
}

// readInput reads a file, or stdin for "-".
func readInput(path string, stdin io.Reader) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(stdin)
	}
	return os.ReadFile(path)
}

// sizeFields are the spec's fields that hold a size.
var sizeFields = map[string]bool{"memory": true, "size": true, "maxMemory": true, "readBytes": true, "writeBytes": true}

// checkSizes parses every size in the document first, so that a bad one is
// reported with its field and line (the decoder reports neither).
func checkSizes(n *yaml.Node, path string) error {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if err := checkSizes(c, path); err != nil {
				return err
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			if err := checkSizes(c, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			field := k.Value
			if path != "" {
				field = path + "." + k.Value
			}
			if sizeFields[k.Value] && v.Kind == yaml.ScalarNode {
				if _, err := api.ParseSize(v.Value); err != nil {
					return fmt.Errorf("line %d: %s: %v", v.Line, field, err)
				}
				continue
			}
			if err := checkSizes(v, field); err != nil {
				return err
			}
		}
	}
	return nil
}

var (
	yamlTypeRE = regexp.MustCompile(` in type [A-Za-z0-9_.]+`)
	yamlIntoRE = regexp.MustCompile(` into (\S+)`)
	// yamlKinds names yaml.v3's node kinds for people.
	yamlKinds = strings.NewReplacer("cannot unmarshal !!str", "cannot read the text", "cannot unmarshal !!seq", "cannot read a list",
		"cannot unmarshal !!map", "cannot read a mapping", "cannot unmarshal !!", "cannot read a ")
	// specTypes names the Go types of spec fields for people.
	specTypes = map[string]string{
		"int": "a whole number", "bool": "true or false", "string": "text", "api.Size": "a size",
		"[]api.Disk": "a list of disks", "map[string]string": "a mapping of text to text",
		"api.VMSpec": "a VM spec (a mapping of fields)", "api.Boot": "a mapping of fields",
		"api.Disk": "a disk (a mapping of fields)", "api.Console": "a mapping of fields",
		"[]api.NIC": "a list of NICs", "api.NIC": "a NIC (a mapping of fields)",
		"api.NetworkSpec": "a network spec (a mapping of fields)", "api.DHCP": "a mapping of fields",
		"[]api.DHCPHost": "a list of static leases", "api.DHCPHost": "a static lease (a mapping of fields)",
		"api.CPUTuning": "a mapping of fields", "[]api.CPUPin": "a list of pins", "api.CPUPin": "a pin (a mapping of vcpu and hostCpus)",
		"api.Hugepages": "a mapping of fields", "api.NUMA": "a mapping of fields", "[]api.NUMANode": "a list of NUMA nodes",
		"api.NUMANode": "a NUMA node (a mapping of fields)", "api.Watchdog": "a mapping of fields", "api.RNG": "a mapping of fields",
		"[]api.Share": "a list of shares", "api.Share": "a share (a mapping of source and tag)", "api.DiskLimits": "a mapping of limits",
	}
)

// yamlError makes yaml.v3's messages about Go types read as spec errors.
func yamlError(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n")
	lines := strings.Split(msg, "\n")
	for i, l := range lines {
		l = strings.TrimSpace(l)
		l = yamlTypeRE.ReplaceAllString(l, "")
		l = strings.Replace(l, "not found", "is not a spec field", 1)
		l = yamlKinds.Replace(l)
		l = yamlIntoRE.ReplaceAllStringFunc(l, func(into string) string {
			if name, ok := specTypes[strings.TrimPrefix(into, " into ")]; ok {
				return " as " + name
			}
			return ""
		})
		lines[i] = l
	}
	return strings.Join(lines, "; ")
}
