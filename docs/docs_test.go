// Package docs holds the project's documentation; its test runs the pages
// that are walks, top to bottom, against dev mode, so that they cannot drift
// from the program.
package docs_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"recoveryvault/internal/testport"
	"recoveryvault/internal/testtool"
)

// walks are the pages whose shell blocks run in order, each against a dev
// mode of its own, and what each must have said on the way.
var walks = map[string][]string{
	"../README.md":       {"every byte came back", "Purged"},
	"getting-started.md": {"refused, as it should be", "every byte came back", "Purged"},
	"vaults.md": {"refused: db1 still holds data", "refused: AlwaysOn is for good", "refused: mallory is no approver",
		"refused: not your own request", "refused: not bob's key", "refused: a signed request counts once"},
}

// devWorker is how a page without a block of its own starts dev mode.
const devWorker = "go run ./worker --dev --soft-delete-retention 1m"

func TestThePagesRunTopToBottomAgainstDevMode(t *testing.T) {
	for _, tool := range []string{"bash", "jq", "ssh-keygen", "diff"} {
		testtool.Need(t, tool)
	}
	temporal := testtool.TemporalCLI(t)
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+"/", "../worker", "../starter")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)
	for page, said := range walks {
		t.Run(filepath.Base(page), func(t *testing.T) {
			t.Parallel()
			worker, script := shellBlocks(t, page)
			out := runWalk(t, bin, temporal, worker, script)
			for _, s := range said {
				require.Contains(t, out, s, "%s went another way:\n%s", page, out)
			}
		})
	}
}

// shellBlocks reads a page's sh blocks: the one that starts dev mode, and the
// others as one script, in order.
func shellBlocks(t *testing.T, page string) (worker, script string) {
	f, err := os.Open(page)
	require.NoError(t, err)
	defer f.Close()
	worker = devWorker
	var blocks []string
	var block []string
	in := false
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := s.Text()
		switch {
		case !in && strings.HasPrefix(line, "```sh"):
			in, block = true, nil
		case in && line == "```":
			in = false
			text := strings.Join(block, "\n")
			if strings.HasPrefix(text, "go run ./worker") {
				worker = text
			} else {
				blocks = append(blocks, text)
			}
		case in:
			block = append(block, line)
		}
	}
	require.NoError(t, s.Err())
	require.NotEmpty(t, blocks, "%s has no sh blocks", page)
	return worker, strings.Join(blocks, "\n")
}

// runWalk starts dev mode as the page says, on ports and a data directory of
// the test's, and runs the page's script against it: go run ./starter is the
// starter built once, and /tmp is a directory of the test's.
func runWalk(t *testing.T, bin, temporal, worker, script string) string {
	work := t.TempDir()
	port := testport.Free(t)
	args := strings.Fields(strings.TrimPrefix(worker, "go run ./worker"))
	args = append(args, "--data-dir", filepath.Join(work, "data"), "--port", fmt.Sprint(port),
		"--ui-port", fmt.Sprint(testport.Free(t)), "--console-port", "0")
	dev := exec.Command(filepath.Join(bin, "worker"), args...)
	dev.Dir = ".."
	logs := &syncBuffer{}
	dev.Stdout, dev.Stderr = logs, logs
	require.NoError(t, dev.Start())
	exited := make(chan error, 1)
	go func() { exited <- dev.Wait() }()
	t.Cleanup(func() {
		_ = dev.Process.Signal(syscall.SIGINT)
		select {
		case <-exited:
		case <-time.After(time.Minute):
			_ = dev.Process.Kill()
		}
	})
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "Recovery Vault worker:") }, 2*time.Minute, 100*time.Millisecond,
		"dev mode did not come up: %s", logs)

	tmp := filepath.Join(work, "tmp") + "/"
	require.NoError(t, os.MkdirAll(tmp, 0o755))
	script = regexp.MustCompile(`/tmp/`).ReplaceAllString(script, tmp)
	shim := fmt.Sprintf(`go() { if [ "$1" = run ] && [ "$2" = ./starter ]; then shift 2; %q "$@"; else command go "$@"; fi; }`, filepath.Join(bin, "starter"))
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", shim+"\n"+script)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(),
		"PATH="+filepath.Dir(temporal)+string(os.PathListSeparator)+os.Getenv("PATH"),
		fmt.Sprintf("TEMPORAL_ADDRESS=127.0.0.1:%d", port), "TEMPORAL_NAMESPACE=default",
		"TEMPORAL_CONFIG_FILE="+filepath.Join(work, "none.toml"), "TMPDIR="+tmp, "SSH_AUTH_SOCK=")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "the page stopped:\n%s\n--- dev mode:\n%s", out, logs)
	return string(out)
}

// syncBuffer is a process's output, read while it writes.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
