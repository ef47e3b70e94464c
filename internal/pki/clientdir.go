package pki

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/godwit-project/godwit/internal/revert"
)

// ClientFiles are the files of a client directory, the layout ClientTLS
// reads: the CA, the client certificate and its key.
var ClientFiles = [3]string{"ca.crt", "client.crt", "client.key"}

// WriteClientDir writes a client directory for ClientTLS: ca.crt and
// client.crt (0644) and client.key (0600) into dir, made 0700 when
// missing. Without overwrite an existing file is an error wrapping
// fs.ErrExist; with it, each file is replaced whole (its old mode never
// survives). On failure it removes what it made.
func WriteClientDir(dir string, caPEM, certPEM, keyPEM []byte, overwrite bool) error {
	r := revert.New()
	defer r.Fail()
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		r.Add(func() { _ = os.Remove(dir) })
	}
	for i, data := range [][]byte{caPEM, certPEM, keyPEM} {
		path, mode := filepath.Join(dir, ClientFiles[i]), fs.FileMode(0o644)
		if i == 2 {
			mode = 0o600
		}
		if overwrite {
			if err := writeFileAtomic(path, data, mode); err != nil {
				return err
			}
			continue
		}
		if err := createFile(path, data, mode); err != nil {
			return err
		}
		r.Add(func() { _ = os.Remove(path) })
	}
	r.Success()
	return nil
}

// createFile writes a new file and fails if path exists.
func createFile(path string, data []byte, mode fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s: %w", path, fs.ErrExist)
	}
	if err != nil {
		return err
	}
	return finishFile(f, data, mode)
}

// writeFileAtomic writes a file next to path and renames it over path: a
// reader sees the old file or the new one, never half of it.
func writeFileAtomic(path string, data []byte, mode fs.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	if err := finishFile(f, data, mode); err != nil {
		_ = os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		_ = os.Remove(f.Name())
		return err
	}
	return nil
}

func finishFile(f *os.File, data []byte, mode fs.FileMode) error {
	err := f.Chmod(mode) // not at the umask's mercy
	if err == nil {
		_, err = f.Write(data)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
