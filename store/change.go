package store

import (
	"math"
	"path"
	"strings"
	"unicode"

	"recoveryvault/workflows/protocol"
)

// What a backup changed is measured from the two file lists and from
// samples of what it read, and kept as counts: file names stay out of
// histories.

// sampleBlock bytes are sampled at the start of every sampleEvery bytes a
// backup reads: about 0.4% of the data, enough to tell encrypted from not.
const (
	sampleBlock = 4 << 10
	sampleEvery = 1 << 20
	// minSample: fewer bytes say little of their entropy.
	minSample = 1 << 10
	// incompressibleBits per byte: compressed or encrypted data is near 8;
	// text and most data are far below.
	incompressibleBits = 7.5
)

// sampler judges samples of a file as it is read.
type sampler struct {
	block          []byte
	offset         int64
	sampled        int64
	incompressible int64
}

func (s *sampler) write(p []byte) {
	for len(p) > 0 {
		var n int64
		if in := s.offset % sampleEvery; in < sampleBlock {
			n = min(int64(len(p)), sampleBlock-in)
			s.block = append(s.block, p[:n]...)
			if len(s.block) == sampleBlock {
				s.judge()
			}
		} else {
			n = min(int64(len(p)), sampleEvery-in)
		}
		p = p[n:]
		s.offset += n
	}
}

// done judges what is left of the last block.
func (s *sampler) done() {
	if len(s.block) >= minSample {
		s.judge()
	}
	s.block = s.block[:0]
}

func (s *sampler) judge() {
	n := int64(len(s.block))
	s.sampled += n
	if entropy(s.block) >= incompressibleBits {
		s.incompressible += n
	}
	s.block = s.block[:0]
}

// entropy is the Shannon entropy of b in bits per byte.
func entropy(b []byte) float64 {
	var counts [256]int
	for _, c := range b {
		counts[c]++
	}
	var h float64
	n := float64(len(b))
	for _, c := range counts {
		if c > 0 {
			p := float64(c) / n
			h -= p * math.Log2(p)
		}
	}
	return h
}

// ransomNoteWords are in the names ransomware gives its notes.
var ransomNoteWords = []string{"decrypt", "ransom", "recover_files", "restore_files", "recover-files", "restore-files",
	"how_to_recover", "how_to_restore", "how_to_back", "unlock_files", "read_me", "readme_for"}

func ransomNote(name string) bool {
	base := strings.ToLower(path.Base(name))
	if strings.Contains(base, "!!!") {
		return true
	}
	for _, w := range ransomNoteWords {
		if strings.Contains(base, w) {
			return true
		}
	}
	return false
}

// extension of a file's name, lower case; names with none have "".
func extension(name string) string {
	return strings.ToLower(path.Ext(path.Base(name)))
}

// maxExtension bounds an extension kept in a history: an attacker chooses it.
const maxExtension = 16

// measure is the change from the previous list to entries; samples are
// what was sampled of the files read.
func measure(previous map[string]fileEntry, entries []*fileEntry) *protocol.Change {
	c := &protocol.Change{}
	oldExt := map[string]bool{}
	for _, p := range previous {
		if p.Type == EntryFile {
			c.Files++
			oldExt[extension(p.name())] = true
		}
	}
	now := map[string]bool{}
	added := map[string]int{}
	// The samples of added files count only for the files that replaced
	// others: new files of data that does not compress (photos, archives)
	// are no change of what was there.
	addedSampled, addedIncompressible := map[string]int64{}, map[string]int64{}
	for _, e := range entries {
		if e.Type != EntryFile {
			continue
		}
		name := e.name()
		now[name] = true
		p, ok := previous[name]
		switch {
		case !ok || p.Type != EntryFile:
			c.Added++
			ext := extension(name)
			added[ext]++
			addedSampled[ext] += e.sampled
			addedIncompressible[ext] += e.incompressible
			c.BytesChanged += e.Size
			if ransomNote(name) {
				c.RansomNotes++
			}
			continue
		case p.SHA256 != e.SHA256:
			c.Changed++
		default:
			continue
		}
		c.BytesChanged += e.Size
		c.Sampled += e.sampled
		c.Incompressible += e.incompressible
	}
	for name, p := range previous {
		if p.Type == EntryFile && !now[name] {
			c.Deleted++
		}
	}
	for ext, n := range added {
		if oldExt[ext] || ext == "" {
			continue
		}
		if r := min(n, c.Deleted); r > c.Replaced || (r == c.Replaced && r > 0 && ext < c.NewExtension) {
			c.Replaced, c.NewExtension = r, ext
		}
	}
	if c.Replaced > 0 {
		c.Sampled += addedSampled[c.NewExtension]
		c.Incompressible += addedIncompressible[c.NewExtension]
	}
	if len(c.NewExtension) > maxExtension || !printable(c.NewExtension) {
		c.NewExtension = "(unprintable)"
	}
	return c
}

func printable(s string) bool {
	for _, r := range s {
		if !unicode.IsPrint(r) || unicode.Is(unicode.Cf, r) {
			return false
		}
	}
	return true
}
