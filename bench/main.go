// Command bench measures the recovery-point store side by side with restic
// and borg, in one run, on the same generated tree on the local disk: a
// first backup, an unchanged second, a third after rewriting 2% of the
// bytes, then a restore of the third; and what each keeps on disk. Every
// restore is compared with the source.
//
//	go run ./bench                        # a 512 MiB tree under $TMPDIR
//	go run ./bench -size 1024 -dir /var/tmp
//
// Our store runs twice: as the worker runs it, and without measuring what
// each backup changed (the anomaly rule's figures), to show that cost.
//
// restic and borg are Debian's (apt-get install restic borgbackup); a tool
// that is missing is left out of the table, saying so. Our store runs in
// this process, as it does in the worker; restic and borg as commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"recoveryvault/internal/treediff"
	"recoveryvault/store"
)

const password = "benchmark password"

func main() {
	sizeMiB := flag.Int("size", 512, "size of the generated tree, in MiB")
	files := flag.Int("files", 64, "number of files: half random bytes, half log-like text")
	dir := flag.String("dir", os.TempDir(), "directory to work in, on the disk to measure")
	flag.Parse()
	if err := run(int64(*sizeMiB)<<20, *files, *dir); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// A tool backs up the source three times and restores the last backup.
type tool struct {
	name    string
	repo    string
	backup  func(n int) error
	restore func(target string) (string, error) // where the source tree lands
	times   [4]time.Duration
	skipped string
}

func run(size int64, files int, parent string) error {
	work, err := os.MkdirTemp(parent, "recoveryvault-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	src := filepath.Join(work, "source")
	fmt.Printf("Generating %d MiB in %d files under %s\n", size>>20, files, src)
	if err := generate(src, size, files); err != nil {
		return err
	}
	measured, unmeasured := ours(work, src, "Recovery Vault"), ours(work, src, "(no change measure)", store.Unmeasured())
	tools := []*tool{unmeasured, measured, restic(work, src), borg(work, src)}

	phases := []string{"first backup", "unchanged backup", "backup after rewriting 2%", "restore"}
	for i, phase := range phases[:3] {
		if i == 2 {
			if err := rewrite(src, size/50); err != nil {
				return err
			}
		}
		for _, t := range tools {
			if t.skipped != "" {
				continue
			}
			// What the tool before wrote is flushed first, not on this one's time.
			syscall.Sync()
			start := time.Now()
			if err := t.backup(i + 1); err != nil {
				return fmt.Errorf("%s, %s: %w", t.name, phase, err)
			}
			t.times[i] = time.Since(start)
			fmt.Printf("  %-20s %-26s %s\n", t.name, phase, t.times[i].Round(time.Millisecond))
		}
	}
	for _, t := range tools {
		if t.skipped != "" {
			fmt.Printf("  %-20s left out: %s\n", t.name, t.skipped)
			continue
		}
		target := filepath.Join(work, "restore-"+t.name)
		syscall.Sync()
		start := time.Now()
		tree, err := t.restore(target)
		if err != nil {
			return fmt.Errorf("%s, restore: %w", t.name, err)
		}
		t.times[3] = time.Since(start)
		fmt.Printf("  %-20s %-26s %s\n", t.name, "restore", t.times[3].Round(time.Millisecond))
		diffs, err := treediff.Diff(src, tree)
		if err != nil {
			return err
		}
		if len(diffs) > 0 {
			return fmt.Errorf("%s restored a different tree: %s", t.name, strings.Join(diffs[:min(len(diffs), 5)], "; "))
		}
		_ = os.RemoveAll(target)
	}

	fmt.Printf("\n| tool | first backup | unchanged | after rewriting 2%% | restore | stored after three backups | stored / source |\n")
	fmt.Printf("| --- | --- | --- | --- | --- | --- | --- |\n")
	for _, t := range tools {
		if t.skipped != "" {
			continue
		}
		stored, err := du(t.repo)
		if err != nil {
			return err
		}
		fmt.Printf("| %s | %s | %s | %s | %s | %d MiB | %.2f |\n", t.name, secs(t.times[0]), secs(t.times[1]), secs(t.times[2]), secs(t.times[3]),
			stored>>20, float64(stored)/float64(size))
	}
	if measured.skipped == "" {
		with, without, err := overhead(work, src, size, rounds)
		if err != nil {
			return err
		}
		fmt.Printf("\nMeasuring what changed (samples while hashing, the file lists compared): %s with, %s without, %+.1f%%\n",
			secs(with), secs(without), 100*(with.Seconds()-without.Seconds())/without.Seconds())
		fmt.Printf("(medians of %d rounds, each a first backup into a fresh repository and one after rewriting 2%%, in alternating order)\n", rounds)
	}
	return nil
}

// rounds of overhead: one run's order and disk cache sway a single
// comparison by more than what is measured.
const rounds = 5

// overhead times our store with and without measuring what changed.
func overhead(work, src string, size int64, rounds int) (with, without time.Duration, err error) {
	var withs, withouts []time.Duration
	for r := range rounds {
		variants := []*tool{ours(work, src, fmt.Sprintf("round %d measured", r)), ours(work, src, fmt.Sprintf("round %d unmeasured", r), store.Unmeasured())}
		if r%2 == 1 {
			variants[0], variants[1] = variants[1], variants[0]
		}
		took := map[*tool]time.Duration{}
		for n := 1; n <= 2; n++ {
			if n == 2 {
				if err := rewrite(src, size/50); err != nil {
					return 0, 0, err
				}
			}
			for _, v := range variants {
				if v.skipped != "" {
					return 0, 0, errors.New(v.skipped)
				}
				syscall.Sync()
				start := time.Now()
				if err := v.backup(n); err != nil {
					return 0, 0, err
				}
				took[v] += time.Since(start)
			}
		}
		for _, v := range variants {
			if strings.HasSuffix(v.name, "unmeasured") {
				withouts = append(withouts, took[v])
			} else {
				withs = append(withs, took[v])
			}
			_ = os.RemoveAll(v.repo)
		}
	}
	return median(withs), median(withouts), nil
}

func median(d []time.Duration) time.Duration {
	slices.Sort(d)
	return d[len(d)/2]
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

// ours is the store, in a directory, as the worker runs it, with options.
func ours(work, src, name string, options ...store.BackupOption) *tool {
	dir := strings.Trim(strings.ToLower(strings.NewReplacer(" ", "-", "(", "", ")", "").Replace(name)), "-")
	repo := filepath.Join(work, dir)
	t := &tool{name: name, repo: repo}
	s, err := store.Open(context.Background(), store.Options{Location: repo, Password: password, WorkDir: filepath.Join(work, dir+"-work"),
		SourceRoots: []string{filepath.Dir(src)}, RestoreRoots: []string{work}})
	if err != nil {
		t.skipped = err.Error()
		return t
	}
	var last store.Point
	t.backup = func(n int) error {
		var err error
		last, err = s.Backup(context.Background(), "bench", "tree", fmt.Sprintf("rp-%d", n), src, time.Time{}, nil, options...)
		return err
	}
	t.restore = func(target string) (string, error) {
		_, err := s.Restore(context.Background(), "bench", "tree", "rp-3", last.SHA256, target, nil)
		return target, err
	}
	return t
}

func restic(work, src string) *tool {
	repo := filepath.Join(work, "restic")
	t := &tool{name: "restic", repo: repo}
	env := append(os.Environ(), "RESTIC_PASSWORD="+password, "RESTIC_REPOSITORY="+repo, "RESTIC_CACHE_DIR="+filepath.Join(work, "restic-cache"))
	if _, err := exec.LookPath("restic"); err != nil {
		t.skipped = "restic is not installed (apt-get install restic)"
		return t
	}
	if err := command(env, "", "restic", "init"); err != nil {
		t.skipped = err.Error()
		return t
	}
	t.backup = func(int) error { return command(env, "", "restic", "backup", "--quiet", src) }
	t.restore = func(target string) (string, error) {
		return filepath.Join(target, src), command(env, "", "restic", "restore", "latest", "--quiet", "--target", target)
	}
	return t
}

func borg(work, src string) *tool {
	repo := filepath.Join(work, "borg")
	t := &tool{name: "borg", repo: repo}
	env := append(os.Environ(), "BORG_PASSPHRASE="+password, "BORG_REPO="+repo, "BORG_BASE_DIR="+filepath.Join(work, "borg-home"))
	if _, err := exec.LookPath("borg"); err != nil {
		t.skipped = "borg is not installed (apt-get install borgbackup)"
		return t
	}
	if err := command(env, "", "borg", "init", "--encryption=repokey"); err != nil {
		t.skipped = err.Error()
		return t
	}
	t.backup = func(n int) error { return command(env, "", "borg", "create", fmt.Sprintf("::b%d", n), src) }
	t.restore = func(target string) (string, error) {
		if err := os.MkdirAll(target, 0o755); err != nil {
			return "", err
		}
		return filepath.Join(target, src), command(env, target, "borg", "extract", "::b3")
	}
	return t
}

func command(env []string, dir, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Env, cmd.Dir = env, dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

// generate writes files of random bytes and of log-like text, half the
// size each, the same for the same arguments.
func generate(dir string, size int64, files int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	rng := rand.New(rand.NewChaCha8([32]byte{1}))
	each := size / int64(files)
	words := strings.Fields("backup restore vault item soft-deleted purge undelete scheduled recovery point window deadline retention " +
		"worker activity workflow timer signal update query status protected stopped approved rejected request alice bob")
	for i := range files {
		data := make([]byte, 0, each)
		if i%2 == 0 {
			data = data[:each]
			for j := range data {
				data[j] = byte(rng.Uint32())
			}
		} else {
			t := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
			for int64(len(data)) < each {
				t = t.Add(time.Duration(rng.IntN(5000)) * time.Millisecond)
				line := fmt.Sprintf("%s %s item-%04d %s %s %s id=%08x\n", t.Format(time.RFC3339Nano),
					[]string{"INFO", "WARN", "DEBUG"}[rng.IntN(3)], rng.IntN(10000),
					words[rng.IntN(len(words))], words[rng.IntN(len(words))], words[rng.IntN(len(words))], rng.Uint32())
				data = append(data, line...)
			}
			data = data[:each]
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("file-%02d.dat", i)), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// rewrite overwrites n bytes, in 64 regions spread over the files, with new
// random bytes, as a running VM or database changes its disks.
func rewrite(dir string, n int64) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewChaCha8([32]byte{2}))
	region := n / 64
	later := time.Now().Add(time.Minute)
	for range 64 {
		e := entries[rng.IntN(len(entries))]
		p := filepath.Join(dir, e.Name())
		info, err := e.Info()
		if err != nil {
			return err
		}
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		buf := make([]byte, region)
		for i := range buf {
			buf[i] = byte(rng.Uint32())
		}
		_, err = f.WriteAt(buf, rng.Int64N(info.Size()-region))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		if err := os.Chtimes(p, later, later); err != nil {
			return err
		}
	}
	return nil
}

// du is the bytes of the files under dir.
func du(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err == nil {
			total += info.Size()
		}
		return err
	})
	return total, err
}
