package treediff

import (
	"os"
	"path/filepath"
	"testing"
)

// WriteSample makes a source tree with what a restore must reproduce:
// nested and empty directories, permissions, a symlink and a 3 MiB file.
// It has three regular files.
func WriteSample(t testing.TB) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "vm1")
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(src, "disks", "data"), 0o750))
	must(os.MkdirAll(filepath.Join(src, "empty"), 0o700))
	must(os.WriteFile(filepath.Join(src, "config.json"), []byte(`{"cpu": 2}`), 0o640))
	must(os.WriteFile(filepath.Join(src, "run.sh"), []byte("#!/bin/sh\necho hi\n"), 0o755))
	big := make([]byte, 3<<20)
	for i := range big {
		big[i] = byte(i * 7 % 251)
	}
	must(os.WriteFile(filepath.Join(src, "disks", "data", "disk0.img"), big, 0o600))
	must(os.Symlink("disks/data/disk0.img", filepath.Join(src, "current")))
	must(os.Chmod(filepath.Join(src, "disks"), 0o711))
	return src
}
