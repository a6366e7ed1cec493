// Package treediff compares two directory trees the way a restore must
// reproduce them: the same entries, types, permissions, symlink targets and
// bytes. Tests use it to prove a restore is identical to its source.
package treediff

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
)

// Diff returns the differences between the trees under want and got, one
// sentence each; none means identical. The mode of got itself is not
// compared: a restore makes its target private to the worker's user.
func Diff(want, got string) ([]string, error) {
	a, err := entries(want)
	if err != nil {
		return nil, err
	}
	b, err := entries(got)
	if err != nil {
		return nil, err
	}
	var diffs []string
	for _, p := range sortedKeys(a) {
		ea, eb := a[p], b[p]
		switch {
		case eb == nil:
			diffs = append(diffs, fmt.Sprintf("%s: missing", p))
		case ea.mode != eb.mode && p != ".":
			diffs = append(diffs, fmt.Sprintf("%s: mode %v, want %v", p, eb.mode, ea.mode))
		case ea.link != eb.link:
			diffs = append(diffs, fmt.Sprintf("%s: link to %q, want %q", p, eb.link, ea.link))
		case !bytes.Equal(ea.data, eb.data):
			diffs = append(diffs, fmt.Sprintf("%s: content differs", p))
		}
	}
	for _, p := range sortedKeys(b) {
		if a[p] == nil {
			diffs = append(diffs, fmt.Sprintf("%s: not in the source", p))
		}
	}
	return diffs, nil
}

type entry struct {
	mode fs.FileMode
	link string
	data []byte
}

func entries(root string) (map[string]*entry, error) {
	out := map[string]*entry{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		e := &entry{mode: info.Mode()}
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			e.link, err = os.Readlink(p)
		case info.Mode().IsRegular():
			e.data, err = os.ReadFile(p)
		}
		out[rel] = e
		return err
	})
	return out, err
}

func sortedKeys(m map[string]*entry) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
