package store

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Host paths. Anyone who can reach the namespace can protect any path and
// restore to any path, so the worker reads sources and writes restores only
// inside the roots its operator gave it, and never its own files.

// Flags that give the roots, named in refusals.
const (
	SourceRootFlag  = "--source-root"
	RestoreRootFlag = "--restore-root"
)

// confined is a host path resolved inside one of the worker's roots.
type confined struct {
	root *os.Root
	// rel is the path relative to the root, real its resolved absolute
	// path; realRoot is the root's.
	rel, real, realRoot string
}

// confine resolves p inside one of roots: its real path, every symlink
// resolved, must lie inside the root's, so neither ".." nor a symlink can
// lead out. What is then created under it is created through os.Root on
// the real path, which refuses to step through a symlink put in its way
// since. A path that does not exist yet is resolved through its deepest
// existing ancestor. The caller closes the root.
func confine(roots []string, p, what, flag string) (confined, error) {
	if len(roots) == 0 {
		return confined{}, fmt.Errorf("this worker was given no %s root, so it reads and writes no host path for a %s: start it with %s DIR", what, what, flag)
	}
	if !filepath.IsAbs(p) {
		return confined{}, fmt.Errorf("%s path %q is not absolute", what, p)
	}
	p = filepath.Clean(p)
	for _, dir := range roots {
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			continue
		}
		realRoot, err := filepath.EvalSymlinks(dir)
		if err != nil {
			return confined{}, fmt.Errorf("the %s root %s cannot be read: %v", what, dir, err)
		}
		real, err := resolveExisting(p)
		if err != nil || !within(realRoot, real) {
			return confined{}, fmt.Errorf("%s path %s leaves its root %s through a symlink: give a path whose every part stays inside the root", what, p, dir)
		}
		root, err := os.OpenRoot(realRoot)
		if err != nil {
			return confined{}, fmt.Errorf("open the %s root %s: %w", what, dir, err)
		}
		rel, _ = filepath.Rel(realRoot, real)
		return confined{root: root, rel: rel, real: real, realRoot: realRoot}, nil
	}
	// A source is named itself; a target may not exist yet.
	suggest := p
	if what != "source" {
		suggest = filepath.Dir(p)
	}
	return confined{}, fmt.Errorf("%s path %s is outside this worker's %s roots (%s): use a path inside one of them, or start the worker with %s %s",
		what, p, what, strings.Join(roots, ", "), flag, suggest)
}

// within is true when p is root or under it, both resolved.
func within(root, p string) bool {
	return p == root || strings.HasPrefix(p, strings.TrimSuffix(root, string(filepath.Separator))+string(filepath.Separator))
}

// checkPrivate refuses a source that holds one of the worker's own
// directories, or lies in one, and a restore target inside one.
func (s *Store) checkPrivate(real, what string) error {
	for _, dir := range s.private() {
		d, err := resolveExisting(dir)
		if err != nil {
			continue
		}
		if within(d, real) || (what == "source" && within(real, d)) {
			return fmt.Errorf("%s %s and the worker's own directory %s overlap: the worker never backs up or restores into its data, its store or its password", what, real, dir)
		}
	}
	return nil
}

// private are the worker's own directories: those it was told of, its
// connection files, and a directory store.
func (s *Store) private() []string {
	dirs := append([]string{s.opts.WorkDir}, s.opts.Private...)
	if d, ok := s.backend.(*directory); ok {
		dirs = append(dirs, d.root)
	}
	return dirs
}

// checkOpened checks a directory opened inside the root where it really
// is, as the kernel names the open handle: a path resolved earlier may
// have been changed since, by a symlink put in place of a directory.
// Where the kernel does not name handles, the earlier check stands.
func (s *Store) checkOpened(c confined, dir *os.Root, what string) error {
	f, err := dir.Open(".")
	if err != nil {
		return err
	}
	defer f.Close()
	real, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
	if err != nil {
		return nil
	}
	if !within(c.realRoot, real) {
		return fmt.Errorf("%s %s is now outside its root %s: a symlink was put in its way", what, real, c.realRoot)
	}
	return s.checkPrivate(real, what)
}
