// Package access answers one question before anything is defined: can the
// user QEMU runs as reach a file a VM needs? libvirt's DAC driver chowns a
// VM's disks and kernel to that user, but not the directories above them,
// so a file under a 0700 directory (root's home, a mktemp -d) fails only
// when QEMU starts, with QEMU's raw "Permission denied". Check names the
// path, the user, the directory in the way and the fix instead.
//
// It reads permissions only; it never changes them.
package access

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// User is who QEMU runs as: libvirt's DAC label (qemu.conf user/group).
type User struct {
	UID, GID int
	// Groups are the user's supplementary groups (from /etc/group).
	Groups []int
	// Name is the user's name, for messages ("libvirt-qemu").
	Name string
}

// Lookup fills in a user's name and groups from the system's databases;
// an unknown uid keeps its number as the name.
func Lookup(uid, gid int) User {
	u := User{UID: uid, GID: gid, Name: strconv.Itoa(uid)}
	pu, err := user.LookupId(strconv.Itoa(uid))
	if err != nil {
		return u
	}
	u.Name = pu.Username
	gids, err := pu.GroupIds()
	if err != nil {
		return u
	}
	for _, g := range gids {
		if n, err := strconv.Atoi(g); err == nil && n != gid {
			u.Groups = append(u.Groups, n)
		}
	}
	return u
}

func (u User) String() string {
	return fmt.Sprintf("%s (uid %d, gid %d)", u.Name, u.UID, u.GID)
}

// Error says which directory keeps the user from a path, and how to fix it.
type Error struct {
	Path string // the file or directory asked about
	Dir  string // the directory the user cannot enter
	Mode fs.FileMode
	UID  int
	GID  int
	User User
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s: QEMU runs as %s, which cannot enter %s (mode %04o, owner %d:%d); "+
		"move it under a directory QEMU can reach (the daemon's state dir, e.g. /var/lib/godwit), or let it through with chmod o+x %s",
		e.Path, e.User, e.Dir, e.Mode.Perm(), e.UID, e.GID, e.Dir)
}

// ErrDenied is what every *Error matches with errors.Is.
var ErrDenied = errors.New("QEMU cannot reach the path")

// Is makes errors.Is(err, ErrDenied) true for an *Error.
func (e *Error) Is(target error) bool { return target == ErrDenied }

// Check reports whether u can reach path: every directory from / down to
// path's parent must let u search it (x). The file itself is not checked:
// libvirt relabels what QEMU opens. root reaches everything. Directories
// not made yet are skipped (the ones above them still count); whether the
// file exists is the caller's business.
func Check(u User, path string) error {
	if u.UID == 0 {
		return nil
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	for dir := filepath.Dir(abs); ; dir = filepath.Dir(dir) {
		st, err := os.Stat(dir)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// Not made yet: what is above it still counts.
		case err != nil:
			return err
		default:
			sys, ok := st.Sys().(*syscall.Stat_t)
			if ok && !u.canSearch(st.Mode(), int(sys.Uid), int(sys.Gid)) {
				return &Error{Path: abs, Dir: dir, Mode: st.Mode(), UID: int(sys.Uid), GID: int(sys.Gid), User: u}
			}
		}
		if dir == "/" {
			return nil
		}
	}
}

// canSearch applies the kernel's rule: the owner bits if u owns it, else
// the group bits if u is in its group, else the other bits.
func (u User) canSearch(mode fs.FileMode, uid, gid int) bool {
	perm := mode.Perm()
	switch {
	case uid == u.UID:
		return perm&0o100 != 0
	case u.inGroup(gid):
		return perm&0o010 != 0
	}
	return perm&0o001 != 0
}

func (u User) inGroup(gid int) bool {
	if gid == u.GID {
		return true
	}
	for _, g := range u.Groups {
		if g == gid {
			return true
		}
	}
	return false
}
