package store

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	kopiafs "github.com/kopia/kopia/fs"
)

// A recovery point's file list names every directory, file and symlink of
// the tree with what a restore must reproduce, each file with its SHA-256.
// The list is stored in the repository with the snapshot; its own SHA-256
// is the recovery point's content hash, which the workflow records.

// Entry types of a file list.
const (
	entryDir     = "dir"
	EntryFile    = "file"
	entrySymlink = "symlink"
)

// fileEntry is one entry of a file list.
type fileEntry struct {
	Path string `json:"path"`
	// RawPath holds the exact bytes of a name that is not valid UTF-8,
	// which JSON cannot carry in Path.
	RawPath []byte      `json:"rawPath,omitempty"`
	Type    string      `json:"type"`
	Mode    fs.FileMode `json:"mode"`
	Size    int64       `json:"size,omitempty"`
	ModTime time.Time   `json:"modTime"`
	SHA256  string      `json:"sha256,omitempty"`
	Target  string      `json:"target,omitempty"`
	// sampled and incompressible are what a backup sampled of the file as
	// it read it, changed its inode's change time; not part of the list.
	sampled, incompressible int64
	changed                 time.Time
}

// name is the entry's exact relative path, "." for the root.
func (e fileEntry) name() string {
	if len(e.RawPath) > 0 {
		return string(e.RawPath)
	}
	return e.Path
}

func newEntry(rel, typ string, mode fs.FileMode, modTime time.Time) *fileEntry {
	e := &fileEntry{Path: rel, Type: typ, Mode: mode, ModTime: modTime.UTC()}
	if !utf8.ValidString(rel) {
		e.Path, e.RawPath = string(bytes.ToValidUTF8([]byte(rel), []byte("?"))), []byte(rel)
	}
	return e
}

// encodeList writes the list, one JSON object a line in path order, and
// returns its SHA-256.
func encodeList(entries []*fileEntry) ([]byte, string, error) {
	slices.SortFunc(entries, func(a, b *fileEntry) int { return cmp.Compare(a.name(), b.name()) })
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, e := range entries {
		if err := enc.Encode(e); err != nil {
			return nil, "", err
		}
	}
	sum := sha256.Sum256(buf.Bytes())
	return buf.Bytes(), hex.EncodeToString(sum[:]), nil
}

// decodeList reads a list written by encodeList.
func decodeList(data []byte) (map[string]fileEntry, error) {
	list := map[string]fileEntry{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var e fileEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("file list: %w", err)
		}
		list[e.name()] = e
	}
	return list, sc.Err()
}

// sourceTree is kopia's view of a source tree, wrapped: every entry kopia
// lists is recorded, special files are left out, and every file kopia
// reads is hashed as it reads it. A file kopia does not read is one the
// previous snapshot holds unchanged, and its hash is carried forward.
type sourceTree struct {
	mu      sync.Mutex
	entries map[string]*fileEntry
	skipped []string
	// read is told of the bytes read, for the progress heartbeat.
	read func(n int64)
	// sample says whether what is read is sampled for how it compresses.
	sample bool
}

func newSourceTree(sample bool, read func(int64)) *sourceTree {
	return &sourceTree{entries: map[string]*fileEntry{}, read: read, sample: sample}
}

func (t *sourceTree) record(e *fileEntry) {
	t.mu.Lock()
	t.entries[e.name()] = e
	t.mu.Unlock()
}

// wrap wraps one entry, keeping its kind: kopia tells entries apart by
// their interfaces.
func (t *sourceTree) wrap(e kopiafs.Entry, rel string) kopiafs.Entry {
	switch v := e.(type) {
	case kopiafs.Directory:
		t.record(newEntry(rel, entryDir, v.Mode().Perm()|fs.ModeDir, v.ModTime()))
		return &sourceDir{Directory: v, t: t, rel: rel}
	case kopiafs.Symlink:
		ent := newEntry(rel, entrySymlink, v.Mode(), v.ModTime())
		target, err := v.Readlink(context.Background())
		if err == nil {
			ent.Target = target
		}
		t.record(ent)
		return &sourceSymlink{Symlink: v}
	case kopiafs.File:
		ent := newEntry(rel, EntryFile, v.Mode().Perm(), v.ModTime())
		ent.Size, ent.changed = v.Size(), changeTime(v.Sys())
		t.record(ent)
		return &sourceFile{File: v, t: t, entry: ent}
	}
	return e
}

// Kopia keeps names as JSON strings, which cannot hold a name that is not
// valid UTF-8: such a name is stored escaped, and a restore renames it
// back from the file list, which holds its exact bytes.
const escapedPrefix = ".rv-name-"

func storedName(name string) string {
	if utf8.ValidString(name) {
		return name
	}
	return escapedPrefix + hex.EncodeToString([]byte(name))
}

// storedPath is the path under which kopia keeps rel.
func storedPath(rel string) string {
	parts := strings.Split(rel, "/")
	for i, p := range parts {
		parts[i] = storedName(p)
	}
	return strings.Join(parts, "/")
}

type sourceDir struct {
	kopiafs.Directory
	t   *sourceTree
	rel string
}

func (d *sourceDir) Name() string { return storedName(d.Directory.Name()) }

type sourceSymlink struct{ kopiafs.Symlink }

func (l *sourceSymlink) Name() string { return storedName(l.Symlink.Name()) }

func (d *sourceDir) Child(ctx context.Context, name string) (kopiafs.Entry, error) {
	e, err := d.Directory.Child(ctx, name)
	if err != nil {
		return nil, err
	}
	return d.t.wrap(e, path.Join(d.rel, name)), nil
}

func (d *sourceDir) Iterate(ctx context.Context) (kopiafs.DirectoryIterator, error) {
	it, err := d.Directory.Iterate(ctx)
	if err != nil {
		return nil, err
	}
	return &sourceIterator{DirectoryIterator: it, d: d}, nil
}

type sourceIterator struct {
	kopiafs.DirectoryIterator
	d *sourceDir
}

// Next skips special files (sockets, devices, pipes), which a backup of a
// tree cannot restore, and records them as skipped.
func (it *sourceIterator) Next(ctx context.Context) (kopiafs.Entry, error) {
	for {
		e, err := it.DirectoryIterator.Next(ctx)
		if e == nil || err != nil {
			return e, err
		}
		rel := path.Join(it.d.rel, e.Name())
		if t := e.Mode().Type(); t != 0 && t != fs.ModeDir && t != fs.ModeSymlink {
			it.d.t.mu.Lock()
			it.d.t.skipped = append(it.d.t.skipped, rel)
			it.d.t.mu.Unlock()
			continue
		}
		return it.d.t.wrap(e, rel), nil
	}
}

type sourceFile struct {
	kopiafs.File
	t     *sourceTree
	entry *fileEntry
}

func (f *sourceFile) Name() string { return storedName(f.File.Name()) }

func (f *sourceFile) Open(ctx context.Context) (kopiafs.Reader, error) {
	r, err := f.File.Open(ctx)
	if err != nil {
		return nil, err
	}
	h := newHashingReader(r, f.entry.name(), f.t.read, nil)
	if f.t.sample {
		h.sample = &sampler{}
	}
	h.done = func(size int64, sum string) {
		f.t.mu.Lock()
		f.entry.SHA256, f.entry.Size = sum, size
		if h.sample != nil {
			f.entry.sampled, f.entry.incompressible = h.sample.sampled, h.sample.incompressible
		}
		f.t.mu.Unlock()
	}
	return h, nil
}

// hashingReader hashes and counts what kopia reads of a file, as a backup
// reads it from the source and as a restore reads it to write, and hands
// both to done when the file is closed. Kopia reads each file once, from
// start to end (the policy turns off its parallel reads of large files), so
// the hash and size are those of the bytes stored or written.
type hashingReader struct {
	kopiafs.Reader
	name string
	sha  hash.Hash
	size int64
	// read is told of every read, for progress; it may be nil.
	read func(n int64)
	done func(size int64, sha256 string)
	// sample, when set, samples what is read for how well it compresses.
	sample *sampler
}

func newHashingReader(r kopiafs.Reader, name string, read func(int64), done func(int64, string)) *hashingReader {
	return &hashingReader{Reader: r, name: name, sha: sha256.New(), read: read, done: done}
}

func (r *hashingReader) Read(p []byte) (int, error) {
	n, err := r.Reader.Read(p)
	r.sha.Write(p[:n])
	if r.sample != nil {
		r.sample.write(p[:n])
	}
	r.size += int64(n)
	if r.read != nil {
		r.read(int64(n))
	}
	return n, err
}

func (r *hashingReader) Seek(offset int64, whence int) (int64, error) {
	if offset != 0 || whence != io.SeekStart {
		return 0, fmt.Errorf("file %s: reading it out of order would not hash it", r.name)
	}
	r.sha.Reset()
	r.size = 0
	if r.sample != nil {
		*r.sample = sampler{}
	}
	return r.Reader.Seek(0, io.SeekStart)
}

func (r *hashingReader) Close() error {
	if r.sample != nil {
		r.sample.done()
	}
	r.done(r.size, hex.EncodeToString(r.sha.Sum(nil)))
	return r.Reader.Close()
}
