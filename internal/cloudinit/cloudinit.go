// Package cloudinit makes cloud-init NoCloud seeds: the meta-data,
// user-data and network-config files from a VM spec's cloudInit, written
// into an ISO 9660 image labelled "cidata" (with Rock Ridge and Joliet, so
// the guest sees the lowercase names with '-').
//
// It validates and renders; it does not attach the seed (internal/vm and
// internal/domainxml do).
package cloudinit

import (
	"bytes"
	"fmt"
	"mime/multipart"
	"net/textproto"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/disk"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"
	"go.yaml.in/yaml/v3"

	"github.com/godwit-project/godwit/api"
)

// VolumeLabel is the label cloud-init's NoCloud looks for.
const VolumeLabel = "cidata"

var (
	hostnameRE = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$`)
	userRE     = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	keyRE      = regexp.MustCompile(`^(ssh-(rsa|ed25519|dss)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com) [A-Za-z0-9+/=]+( .*)?$`)
)

// Validate checks a spec's cloudInit; errors are 400s naming the field.
func Validate(c *api.CloudInit) error {
	if c == nil {
		return nil
	}
	if c.Hostname != "" && (len(c.Hostname) > 253 || !hostnameRE.MatchString(c.Hostname)) {
		return api.BadRequest("cloudInit.hostname: %q is not a host name (letters, digits, '-' and '.')", c.Hostname)
	}
	checkKeys := func(field string, keys []string) error {
		for i, k := range keys {
			if strings.ContainsAny(k, "\n\r") || !keyRE.MatchString(strings.TrimSpace(k)) {
				return api.BadRequest("%s[%d]: not an SSH public key (e.g. ssh-ed25519 AAAA... user@host)", field, i)
			}
		}
		return nil
	}
	if err := checkKeys("cloudInit.sshKeys", c.SSHKeys); err != nil {
		return err
	}
	seen := map[string]bool{}
	for i, u := range c.Users {
		field := fmt.Sprintf("cloudInit.users[%d]", i)
		if !userRE.MatchString(u.Name) {
			return api.BadRequest("%s.name: %q is not a user name (lowercase letters, digits, '_' and '-')", field, u.Name)
		}
		if seen[u.Name] {
			return api.BadRequest("%s.name: %q is listed twice", field, u.Name)
		}
		seen[u.Name] = true
		if err := checkKeys(field+".sshKeys", u.SSHKeys); err != nil {
			return err
		}
		if u.Shell != "" && !strings.HasPrefix(u.Shell, "/") {
			return api.BadRequest("%s.shell: %q must be an absolute path", field, u.Shell)
		}
	}
	if c.UserData != "" && !strings.HasPrefix(c.UserData, "#") && !strings.HasPrefix(c.UserData, "Content-Type:") {
		return api.BadRequest("cloudInit.userData: must start with #cloud-config, #! (a script) or another cloud-init header")
	}
	if strings.HasPrefix(c.UserData, "#cloud-config") {
		var v any
		if err := yaml.Unmarshal([]byte(c.UserData), &v); err != nil {
			return api.BadRequest("cloudInit.userData: not valid YAML: %v", err)
		}
	}
	if c.NetworkConfig != "" {
		var v map[string]any
		if err := yaml.Unmarshal([]byte(c.NetworkConfig), &v); err != nil {
			return api.BadRequest("cloudInit.networkConfig: not valid YAML: %v", err)
		}
		if _, ok := v["version"]; !ok {
			if _, ok := v["network"]; !ok {
				return api.BadRequest("cloudInit.networkConfig: needs version: 1 or 2")
			}
		}
	}
	return nil
}

// Files are a seed's files, by name.
type Files map[string][]byte

// Render makes the seed files. instanceID changes when the VM is a new
// one (cloud-init runs its once-per-instance modules again).
func Render(c api.CloudInit, vmName, instanceID string) (Files, error) {
	host := c.Hostname
	if host == "" {
		host = vmName
	}
	files := Files{}
	meta := map[string]string{"instance-id": instanceID, "local-hostname": host}
	mb, err := yaml.Marshal(meta)
	if err != nil {
		return nil, err
	}
	files["meta-data"] = mb

	cfg := map[string]any{"hostname": host, "preserve_hostname": false}
	if strings.Contains(host, ".") {
		cfg["fqdn"] = host
		cfg["hostname"] = strings.SplitN(host, ".", 2)[0]
	}
	if len(c.Users) > 0 {
		users := []any{"default"}
		for _, u := range c.Users {
			m := map[string]any{"name": u.Name, "lock_passwd": true}
			m["shell"] = u.Shell
			if u.Shell == "" {
				m["shell"] = "/bin/bash"
			}
			if len(u.SSHKeys) > 0 {
				m["ssh_authorized_keys"] = u.SSHKeys
			}
			if u.Sudo {
				m["sudo"] = "ALL=(ALL) NOPASSWD:ALL"
			}
			users = append(users, m)
		}
		cfg["users"] = users
	}
	if len(c.SSHKeys) > 0 {
		cfg["ssh_authorized_keys"] = c.SSHKeys
	}
	cb, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	generated := append([]byte("#cloud-config\n"), cb...)
	if c.UserData == "" {
		files["user-data"] = generated
	} else {
		ud, err := multipartUserData(generated, []byte(c.UserData))
		if err != nil {
			return nil, err
		}
		files["user-data"] = ud
	}
	if c.NetworkConfig != "" {
		files["network-config"] = []byte(c.NetworkConfig)
	}
	return files, nil
}

// multipartUserData joins the generated cloud-config and the user's own
// user-data into one MIME multipart message, which cloud-init reads part
// by part (cloud-configs are merged, scripts run).
func multipartUserData(generated, raw []byte) ([]byte, error) {
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=\"%s\"\nMIME-Version: 1.0\n\n", w.Boundary())
	for _, part := range []struct {
		name string
		data []byte
	}{{"godwit.cfg", generated}, {"user-data", raw}} {
		h := textproto.MIMEHeader{}
		h.Set("Content-Type", partType(part.data)+"; charset=\"utf-8\"")
		h.Set("Content-Disposition", `attachment; filename="`+part.name+`"`)
		pw, err := w.CreatePart(h)
		if err != nil {
			return nil, err
		}
		if _, err := pw.Write(part.data); err != nil {
			return nil, err
		}
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func partType(data []byte) string {
	s := string(data)
	switch {
	case strings.HasPrefix(s, "#cloud-config"):
		return "text/cloud-config"
	case strings.HasPrefix(s, "#!"):
		return "text/x-shellscript"
	case strings.HasPrefix(s, "#cloud-boothook"):
		return "text/cloud-boothook"
	case strings.HasPrefix(s, "#include"):
		return "text/x-include-url"
	}
	return "text/plain"
}

// WriteISO writes the files into a new ISO 9660 image at path, labelled
// cidata. The file is made next to path and renamed, so a reader never
// sees half an image.
func WriteISO(path string, files Files) error {
	var size int64
	for _, b := range files {
		size += int64(len(b)) + 2048
	}
	size += 1 << 20
	tmp := path + ".tmp"
	_ = os.Remove(tmp)
	d, err := diskfs.Create(tmp, size, diskfs.SectorSizeDefault)
	if err != nil {
		return fmt.Errorf("seed ISO: %w", err)
	}
	fail := func(err error) error {
		_ = d.Close()
		_ = os.Remove(tmp)
		return fmt.Errorf("seed ISO: %w", err)
	}
	d.LogicalBlocksize = 2048
	work, err := os.MkdirTemp(filepath.Dir(path), ".seed-")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(work)
	fs, err := d.CreateFilesystem(disk.FilesystemSpec{Partition: 0, FSType: filesystem.TypeISO9660, VolumeLabel: VolumeLabel, WorkDir: work})
	if err != nil {
		return fail(err)
	}
	for name, data := range files {
		f, err := fs.OpenFile("/"+name, os.O_CREATE|os.O_RDWR)
		if err != nil {
			return fail(err)
		}
		if _, err := f.Write(data); err != nil {
			return fail(err)
		}
		if err := f.Close(); err != nil {
			return fail(err)
		}
	}
	iso, ok := fs.(*iso9660.FileSystem)
	if !ok {
		return fail(fmt.Errorf("not an iso9660 filesystem"))
	}
	if err := iso.Finalize(iso9660.FinalizeOptions{RockRidge: true, Joliet: true, VolumeIdentifier: VolumeLabel}); err != nil {
		return fail(err)
	}
	if err := d.Close(); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("seed ISO: %w", err)
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
