package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"syscall"
	"time"

	kopiafs "github.com/kopia/kopia/fs"
)

// A source tree as kopia reads it, through an os.Root opened on the source:
// every entry is listed with Lstat inside the root, and every directory or
// file is opened inside the root and checked to be the very entry that was
// listed. A symlink put in place of a directory or file after it was listed
// is therefore never followed out of the source, nor into another part of
// it; kopia itself never opens a path.

// hostTree is an open source.
type hostTree struct{ root *os.Root }

// hostTreeOn is the tree of an open source directory named name; closing
// the tree closes it.
func hostTreeOn(r *os.Root, name string) (*hostTree, kopiafs.Directory, error) {
	info, err := r.Lstat(".")
	if err != nil {
		r.Close()
		return nil, nil, err
	}
	t := &hostTree{root: r}
	return t, &hostDir{hostEntry{t: t, rel: ".", info: info, name: name}}, nil
}

func (t *hostTree) Close() error { return t.root.Close() }

// hostEntry is one listed entry: its path inside the root and what Lstat
// said of it.
type hostEntry struct {
	t    *hostTree
	rel  string
	name string
	info fs.FileInfo
}

func (e *hostEntry) Name() string                { return e.name }
func (e *hostEntry) Size() int64                 { return e.info.Size() }
func (e *hostEntry) Mode() fs.FileMode           { return e.info.Mode() }
func (e *hostEntry) ModTime() time.Time          { return e.info.ModTime() }
func (e *hostEntry) IsDir() bool                 { return e.info.IsDir() }
func (e *hostEntry) Sys() any                    { return e.info.Sys() }
func (e *hostEntry) LocalFilesystemPath() string { return "" }
func (e *hostEntry) Close()                      {}

func (e *hostEntry) Owner() kopiafs.OwnerInfo {
	if st, ok := e.info.Sys().(*syscall.Stat_t); ok {
		return kopiafs.OwnerInfo{UserID: st.Uid, GroupID: st.Gid}
	}
	return kopiafs.OwnerInfo{}
}

func (e *hostEntry) Device() kopiafs.DeviceInfo {
	if st, ok := e.info.Sys().(*syscall.Stat_t); ok {
		return kopiafs.DeviceInfo{Dev: st.Dev, Rdev: st.Rdev}
	}
	return kopiafs.DeviceInfo{}
}

// open opens the entry inside the root and checks it is the one listed.
func (e *hostEntry) open() (*os.File, error) {
	f, err := e.t.root.Open(e.rel)
	if err != nil {
		return nil, err
	}
	now, err := f.Stat()
	if err == nil && !os.SameFile(now, e.info) {
		err = fmt.Errorf("%s was replaced while it was read: back it up again", e.rel)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// child lists the entry rel inside the root.
func (t *hostTree) child(rel string) (kopiafs.Entry, error) {
	info, err := t.root.Lstat(rel)
	if err != nil {
		return nil, err
	}
	e := hostEntry{t: t, rel: rel, name: path.Base(rel), info: info}
	switch {
	case info.IsDir():
		return &hostDir{e}, nil
	case info.Mode()&fs.ModeSymlink != 0:
		return &hostSymlink{e}, nil
	case info.Mode().IsRegular():
		return &hostFile{e}, nil
	}
	// A socket, device or pipe: listed, never read.
	return &e, nil
}

type hostDir struct{ hostEntry }

func (d *hostDir) SupportsMultipleIterations() bool { return true }

func (d *hostDir) Child(_ context.Context, name string) (kopiafs.Entry, error) {
	e, err := d.t.child(path.Join(d.rel, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, kopiafs.ErrEntryNotFound
	}
	return e, err
}

func (d *hostDir) Iterate(context.Context) (kopiafs.DirectoryIterator, error) {
	f, err := d.open()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	entries := make([]kopiafs.Entry, 0, len(names))
	for _, n := range names {
		e, err := d.t.child(path.Join(d.rel, n))
		if errors.Is(err, fs.ErrNotExist) {
			continue // gone since it was listed
		}
		if err != nil {
			return nil, err
		}
		entries = append(entries, e)
	}
	return kopiafs.StaticIterator(entries, nil), nil
}

type hostFile struct{ hostEntry }

func (f *hostFile) Open(context.Context) (kopiafs.Reader, error) {
	file, err := f.open()
	if err != nil {
		return nil, err
	}
	return &hostReader{File: file, entry: f}, nil
}

type hostReader struct {
	*os.File
	entry *hostFile
}

func (r *hostReader) Entry() (kopiafs.Entry, error) { return r.entry, nil }

var _ io.ReadSeekCloser = (*hostReader)(nil)

type hostSymlink struct{ hostEntry }

func (l *hostSymlink) Readlink(context.Context) (string, error) { return l.t.root.Readlink(l.rel) }

// Resolve is refused: a symlink in a source is kept as a symlink.
func (l *hostSymlink) Resolve(context.Context) (kopiafs.Entry, error) {
	return nil, fmt.Errorf("%s is a symlink, kept as one and never followed", l.rel)
}
