// Package ransomware does to a test's source tree what ransomware does to
// a real one, so that tests can show it caught.
package ransomware

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// Note is the name of the ransom note Encrypt leaves.
const Note = "HOW_TO_DECRYPT_FILES.txt"

// WriteDocuments writes n text documents of about size bytes each under
// dir: data that compresses, as most of a real source does.
func WriteDocuments(t testing.TB, dir string, n, size int) {
	t.Helper()
	for i := range n {
		sub := filepath.Join(dir, fmt.Sprintf("dept-%d", i%4))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		line := fmt.Sprintf("Report %d: quarterly figures, minutes of the meeting, and the plan for next year.\n", i)
		body := strings.Repeat(line, size/len(line)+1)[:size]
		if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("report-%03d.docx", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// Encrypt replaces n of the files under dir with random bytes of their
// size under the name plus ".locked", deletes the originals, and leaves a
// ransom note at the top. It returns the files it encrypted.
func Encrypt(t testing.TB, dir string, n int) []string {
	t.Helper()
	files := encryptEach(t, dir, n, func(f string, _ os.FileInfo, data []byte) error {
		if err := os.WriteFile(f+".locked", data, 0o644); err != nil {
			return err
		}
		return os.Remove(f)
	})
	if err := os.WriteFile(filepath.Join(dir, Note), []byte("Your files are encrypted. Pay to get them back.\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return files
}

// EncryptCovertly overwrites n of the files under dir with random bytes,
// keeping each one's name, size, mode and modification time: only the
// change time the kernel keeps betrays it. It returns the files it
// encrypted.
func EncryptCovertly(t testing.TB, dir string, n int) []string {
	t.Helper()
	return encryptEach(t, dir, n, func(f string, info os.FileInfo, data []byte) error {
		if err := os.WriteFile(f, data, 0); err != nil {
			return err
		}
		return os.Chtimes(f, info.ModTime(), info.ModTime())
	})
}

// encryptEach hands write the first n regular files under dir, in order,
// each with random bytes of its size, and returns them.
func encryptEach(t testing.TB, dir string, n int, write func(f string, info os.FileInfo, data []byte) error) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	files = files[:min(n, len(files))]
	for _, f := range files {
		info, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		data := make([]byte, info.Size())
		_, _ = rand.Read(data)
		if err := write(f, info, data); err != nil {
			t.Fatal(err)
		}
	}
	return files
}

// Edit changes n of the documents under dir as people do: a line added.
func Edit(t testing.TB, dir string, n int) {
	t.Helper()
	done := 0
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || done == n {
			return err
		}
		f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		done++
		_, err = f.WriteString("Amended after review.\n")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
