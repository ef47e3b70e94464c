package cloudinit

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/testenv"
)

const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBtestkeytestkeytestkeytestkeytestkeytest test@godwit"

func TestValidate(t *testing.T) {
	good := &api.CloudInit{Hostname: "web1.example.com", SSHKeys: []string{key},
		Users:    []api.CloudInitUser{{Name: "ops", SSHKeys: []string{key}, Sudo: true}},
		UserData: "#!/bin/sh\necho hi\n", NetworkConfig: "version: 2\nethernets: {}\n"}
	if err := Validate(good); err != nil {
		t.Fatal(err)
	}
	bad := map[string]*api.CloudInit{
		"cloudInit.hostname":        {Hostname: "bad_host!"},
		"cloudInit.sshKeys[0]":      {SSHKeys: []string{"not a key"}},
		"cloudInit.users[0].name":   {Users: []api.CloudInitUser{{Name: "Root/../x"}}},
		"cloudInit.userData":        {UserData: "hello"},
		"cloudInit.networkConfig":   {NetworkConfig: "ethernets: {}\n"},
		"cloudInit.users[1].name":   {Users: []api.CloudInitUser{{Name: "a"}, {Name: "a"}}},
		"cloudInit.users[0].shell":  {Users: []api.CloudInitUser{{Name: "a", Shell: "bash"}}},
		"cloudInit.userData: not v": {UserData: "#cloud-config\n: [\n"},
	}
	for want, c := range bad {
		err := Validate(c)
		if err == nil || api.Status(err) != 400 || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate(%+v) = %v, want a 400 naming %s", c, err, want)
		}
	}
}

func TestRender(t *testing.T) {
	f, err := Render(api.CloudInit{Users: []api.CloudInitUser{{Name: "ops", SSHKeys: []string{key}, Sudo: true}},
		UserData: "#!/bin/sh\necho hi\n"}, "vm1", "iid-1")
	if err != nil {
		t.Fatal(err)
	}
	md := string(f["meta-data"])
	if !strings.Contains(md, "instance-id: iid-1") || !strings.Contains(md, "local-hostname: vm1") {
		t.Fatalf("meta-data:\n%s", md)
	}
	ud := string(f["user-data"])
	for _, want := range []string{"multipart/mixed", "text/cloud-config", "text/x-shellscript", "name: ops", key, "NOPASSWD", "hostname: vm1", "echo hi"} {
		if !strings.Contains(ud, want) {
			t.Errorf("user-data lacks %q:\n%s", want, ud)
		}
	}
	if _, ok := f["network-config"]; ok {
		t.Error("network-config without networkConfig")
	}
	plain, _ := Render(api.CloudInit{SSHKeys: []string{key}}, "vm2", "iid-2")
	if ud := string(plain["user-data"]); !strings.HasPrefix(ud, "#cloud-config\n") || strings.Contains(ud, "multipart") {
		t.Fatalf("plain user-data:\n%s", ud)
	}
}

// The ISO has the cidata label and the files under their real names.
func TestWriteISO(t *testing.T) {
	testenv.RequireCommand(t, "isoinfo")
	testenv.RequireCommand(t, "blkid")
	p := filepath.Join(t.TempDir(), "seed.iso")
	files, _ := Render(api.CloudInit{Hostname: "h1", NetworkConfig: "version: 2\n"}, "vm", "iid")
	if err := WriteISO(p, files); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("blkid", "-o", "export", p).Output()
	if err != nil || !strings.Contains(string(out), "LABEL=cidata") || !strings.Contains(string(out), "TYPE=iso9660") {
		t.Fatalf("blkid: %s %v", out, err)
	}
	for _, ext := range [][]string{{"-R"}, {"-J"}} {
		out, err := exec.Command("isoinfo", append(ext, "-f", "-i", p)...).Output()
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"/meta-data", "/user-data", "/network-config"} {
			if !strings.Contains(string(out), name+"\n") {
				t.Errorf("isoinfo %v -f lacks %s:\n%s", ext, name, out)
			}
		}
	}
	got, err := exec.Command("isoinfo", "-R", "-i", p, "-x", "/meta-data").Output()
	if err != nil || !strings.Contains(string(got), "local-hostname: h1") {
		t.Fatalf("meta-data in the ISO: %q %v", got, err)
	}
}
