package access

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	top, err := os.MkdirTemp("", "godwit-access-") // t.TempDir is 0700: others cannot search it
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(top) })
	if err := os.Chmod(top, 0o711); err != nil {
		t.Fatal(err)
	}
	closed := filepath.Join(top, "closed")
	open := filepath.Join(top, "open")
	for _, d := range []string{closed, open} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(closed, 0o700); err != nil {
		t.Fatal(err)
	}
	qemu := User{UID: 64055, GID: 64055, Name: "libvirt-qemu"}
	file := filepath.Join(closed, "vmlinuz")

	err = Check(qemu, file)
	var ae *Error
	if !errors.As(err, &ae) || !errors.Is(err, ErrDenied) {
		t.Fatalf("a file under a 0700 dir: got %v, want an *Error", err)
	}
	for _, want := range []string{file, "libvirt-qemu (uid 64055, gid 64055)", "cannot enter " + closed, "mode 0700", "chmod o+x " + closed} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message lacks %q: %s", want, err)
		}
	}
	if err := Check(qemu, filepath.Join(open, "vmlinuz")); err != nil {
		t.Errorf("a file under 0755 dirs: %v", err)
	}
	if err := Check(qemu, filepath.Join(closed, "not", "made", "yet")); err == nil {
		t.Errorf("dirs not made yet under a 0700 dir: want an error")
	}
	if err := Check(User{UID: 0}, file); err != nil {
		t.Errorf("root: %v", err)
	}
	// The group bits count for a member of the directory's group.
	if err := os.Chmod(closed, 0o710); err != nil {
		t.Fatal(err)
	}
	gid := os.Getgid()
	if err := Check(User{UID: 64055, GID: 64055, Groups: []int{gid}}, file); err != nil {
		t.Errorf("member of the dir's group (%d) with g+x: %v", gid, err)
	}
	if err := Check(qemu, file); err == nil {
		t.Errorf("not a member, only g+x: want an error")
	}
	// The owner bits count for the owner, even when others may search.
	if err := os.Chmod(closed, 0o611); err != nil {
		t.Fatal(err)
	}
	if err := Check(User{UID: os.Getuid(), GID: 64055}, file); err == nil && os.Getuid() != 0 {
		t.Errorf("owner without u+x: want an error")
	}
	if err := Check(qemu, file); err != nil {
		t.Errorf("others with o+x: %v", err)
	}
}

func TestLookup(t *testing.T) {
	u := Lookup(0, 0)
	if u.Name != "root" {
		t.Errorf("uid 0 is %q, want root", u.Name)
	}
	if u := Lookup(987654, 987654); u.Name != "987654" {
		t.Errorf("an unknown uid keeps its number: %q", u.Name)
	}
}
