// Command worker runs Recovery Vault's worker: against a Temporal cluster,
// or with --dev on a real Temporal server embedded in the same process.
package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"
	sdklog "go.temporal.io/sdk/log"
	"golang.org/x/net/http/httpguts"

	"recoveryvault/activities"
	"recoveryvault/console"
	"recoveryvault/internal/backupworker"
	"recoveryvault/internal/devserver"
	"recoveryvault/internal/searchattributes"
	"recoveryvault/store"
	"recoveryvault/workflows/protocol"
)

// config is what the flags say.
type config struct {
	dev bool
	// maxVerifications is how many restore drills run at once.
	maxVerifications int
	// loadTest is dev mode's settings on an existing cluster: for load
	// tests on a throwaway cluster, never for data that matters.
	loadTest            bool
	dataDir             string
	port, uiPort        int
	store               string
	passwordFile        string
	lockMode            string
	softDeleteRetention time.Duration
	webhookURL          string
	// consolePort is dev mode's console port on 127.0.0.1 (0: no console);
	// consoleAddr serves it anywhere, and is how production turns it on.
	consolePort    int
	consoleAddr    string
	identityHeader string
	// sourceRoots and restoreRoots confine the host paths items name.
	sourceRoots, restoreRoots roots
	restoreOwners             bool
	noObjectLock              bool
}

// roots is a repeatable directory flag; with none given, its environment
// variable's colon-separated list.
type roots []string

func (r *roots) String() string { return strings.Join(*r, ":") }

func (r *roots) Set(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	*r = append(*r, abs)
	return nil
}

// orEnv is r, or the directories the environment variable lists.
func (r roots) orEnv(name string) (roots, error) {
	if len(r) > 0 || os.Getenv(name) == "" {
		return r, nil
	}
	var out roots
	for _, dir := range filepath.SplitList(os.Getenv(name)) {
		if dir == "" {
			continue
		}
		if err := out.Set(dir); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	return out, nil
}

// resolveRoots fills in the roots from the environment, and in dev mode
// with none given, the system's temporary directory and the user's home.
func (c *config) resolveRoots() error {
	var err error
	if c.sourceRoots, err = c.sourceRoots.orEnv("RECOVERYVAULT_SOURCE_ROOTS"); err != nil {
		return err
	}
	if c.restoreRoots, err = c.restoreRoots.orEnv("RECOVERYVAULT_RESTORE_ROOTS"); err != nil {
		return err
	}
	if !c.dev {
		return nil
	}
	defaults := roots{os.TempDir()}
	if home, err := os.UserHomeDir(); err == nil {
		defaults = append(defaults, home)
	}
	if len(c.sourceRoots) == 0 {
		c.sourceRoots = defaults
	}
	if len(c.restoreRoots) == 0 {
		c.restoreRoots = defaults
	}
	return nil
}

// describeRoots says where the worker reads and writes on its host.
func describeRoots(r roots, flag string) string {
	if len(r) == 0 {
		return "none: every one is refused until the worker is started with " + flag + " DIR"
	}
	return strings.Join(r, ", ")
}

// newFlags defines the worker's flags into c. Its usage names the command
// rather than the binary's path, which for go run is a file in the build
// cache.
func newFlags(c *config) *flag.FlagSet {
	fs := flag.NewFlagSet("worker", flag.ExitOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: worker [flags]

Recovery Vault's worker: runs the BackupItem and Vault workflows and their
activities on task queue "backup".

  go run ./worker --dev   the whole system on this machine: a Temporal server,
                          the Temporal Web UI, the web console and the worker
  go run ./worker         the worker alone, against the Temporal cluster named by
                          TEMPORAL_ADDRESS and TEMPORAL_NAMESPACE (or a CLI profile)

Flags:
`)
		fs.PrintDefaults()
	}
	fs.BoolVar(&c.dev, "dev", false, "run a real Temporal server and its Web UI in this process, persisted under --data-dir")
	fs.BoolVar(&c.loadTest, "load-test", false,
		"on an existing cluster, take dev mode's settings: --soft-delete-retention may shorten every window (load tests on a throwaway cluster only)")
	fs.StringVar(&c.dataDir, "data-dir", cmp.Or(os.Getenv("RECOVERYVAULT_DATA_DIR"), ".recoveryvault"), "directory of the worker's own files (env RECOVERYVAULT_DATA_DIR); in dev mode also Temporal's SQLite file, its log, the recovery-point store and its password")
	fs.IntVar(&c.port, "port", 7233, "dev mode: Temporal frontend port on 127.0.0.1")
	fs.IntVar(&c.uiPort, "ui-port", 8233, "dev mode: Temporal Web UI port on 127.0.0.1")
	fs.StringVar(&c.store, "store", os.Getenv("RECOVERYVAULT_STORE"),
		"where recovery points are kept: a directory, or s3://BUCKET/PREFIX configured by the AWS SDK's environment "+
			"(env RECOVERYVAULT_STORE; default <data-dir>/store); workers that share items must share it")
	fs.StringVar(&c.passwordFile, "repository-password-file", os.Getenv("RECOVERYVAULT_REPOSITORY_PASSWORD_FILE"),
		"file holding the password that encrypts the store (env RECOVERYVAULT_REPOSITORY_PASSWORD_FILE, or the password itself in "+
			"RECOVERYVAULT_REPOSITORY_PASSWORD); dev mode makes one under --data-dir")
	fs.StringVar(&c.lockMode, "object-lock-mode", cmp.Or(os.Getenv("RECOVERYVAULT_OBJECT_LOCK_MODE"), "COMPLIANCE"),
		"on a bucket with object lock, the retention mode every object gets: COMPLIANCE, which no one can shorten, or GOVERNANCE "+
			"(env RECOVERYVAULT_OBJECT_LOCK_MODE)")
	fs.StringVar(&c.webhookURL, "webhook-url", os.Getenv("RECOVERYVAULT_WEBHOOK_URL"),
		"POST alerts as JSON to this URL (env RECOVERYVAULT_WEBHOOK_URL); without it alerts are log lines")
	fs.IntVar(&c.consolePort, "console-port", 8234, "dev mode: web console port on 127.0.0.1 (0 turns it off)")
	fs.StringVar(&c.consoleAddr, "console-addr", os.Getenv("RECOVERYVAULT_CONSOLE_ADDR"),
		"serve the web console on this host:port (env RECOVERYVAULT_CONSOLE_ADDR); outside dev mode it needs --identity-header")
	fs.StringVar(&c.identityHeader, "identity-header", os.Getenv("RECOVERYVAULT_IDENTITY_HEADER"),
		"take the console operator's identity from this header, set by an authenticating proxy, e.g. X-Forwarded-Email (env RECOVERYVAULT_IDENTITY_HEADER)")
	fs.Var(&c.sourceRoots, "source-root", "a directory items may be protected from, repeatable (env RECOVERYVAULT_SOURCE_ROOTS, colon-separated); "+
		"without one every protect is refused, but in dev mode, where the default is the system's temporary directory and your home")
	fs.Var(&c.restoreRoots, "restore-root", "a directory restores may write into, repeatable (env RECOVERYVAULT_RESTORE_ROOTS, colon-separated); "+
		"without one every restore is refused, but in dev mode, where the default is the system's temporary directory and your home")
	fs.BoolVar(&c.noObjectLock, "no-object-lock", os.Getenv("RECOVERYVAULT_NO_OBJECT_LOCK") != "",
		"run without the bucket's object lock, or without knowing whether it has one: the storage then no longer keeps data against deletion "+
			"(env RECOVERYVAULT_NO_OBJECT_LOCK); without it a worker that cannot read its bucket's lock status refuses to start")
	fs.BoolVar(&c.restoreOwners, "restore-owners", false, "restore files' owners (the worker must run as root); otherwise what is restored belongs to the worker's user")
	fs.IntVar(&c.maxVerifications, "max-verifications", backupworker.MaxVerifications,
		"restore drills run at once, on task queue "+protocol.VerifyTaskQueue+", apart from backups (each reads a whole recovery point)")
	fs.DurationVar(&c.softDeleteRetention, "soft-delete-retention", 0,
		"dev mode: replace the soft-delete window of every delete, e.g. 2m for demos; "+
			"otherwise a minimum window of 336h to 4320h (14 to 180 days) that can only lengthen an item's")
	return fs
}

func main() {
	var c config
	_ = newFlags(&c).Parse(os.Args[1:]) // ExitOnError: a bad flag exits with the usage

	stop := make(chan any)
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	go func() {
		<-ctx.Done()
		// A second Ctrl-C ends a shutdown that hangs.
		cancel()
		close(stop)
	}()
	if err := run(c, os.Stdout, stop); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

// run serves until stop is closed (SIGINT or SIGTERM in main), then stops
// the worker, and in dev mode the UI and the server, cleanly.
func run(c config, out io.Writer, stop <-chan any) error {
	if err := c.validate(); err != nil {
		return err
	}
	if err := c.resolveRoots(); err != nil {
		return err
	}
	if c.store == "" {
		c.store = filepath.Join(c.dataDir, "store")
	}
	if c.dev && c.consoleAddr == "" {
		// Before anything is created: a refused start leaves nothing behind.
		if err := devserver.CheckPort(c.consolePort, "--console-port (0 turns the console off)"); err != nil {
			return err
		}
	}

	var opts client.Options
	var dev *devserver.Server
	if c.dev {
		srv, err := devserver.Start(devserver.Options{
			DataDir: c.dataDir, Port: c.port, UIPort: c.uiPort, SearchAttributes: searchattributes.Attributes,
		})
		if err != nil {
			return err
		}
		defer func() {
			srv.Stop()
			fmt.Fprintln(out, "Recovery Vault dev mode stopped; start it again on the same --data-dir to carry on.")
		}()
		dev = srv
		opts = client.Options{HostPort: srv.FrontendAddress(), Namespace: client.DefaultNamespace, Logger: quietLogger()}
	} else {
		var err error
		if opts, err = envconfig.LoadDefaultClientOptions(); err != nil {
			return fmt.Errorf("read the Temporal connection settings (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_PROFILE): %w", err)
		}
		if opts.HostPort == "" {
			opts.HostPort = "127.0.0.1:7233"
		}
		if opts.Namespace == "" {
			opts.Namespace = client.DefaultNamespace
		}
	}
	password, created, err := repositoryPassword(c)
	if err != nil {
		return err
	}
	st, err := store.Open(context.Background(), store.Options{
		Location: c.store, Password: password, WorkDir: filepath.Join(c.dataDir, "kopia"), LockMode: c.lockMode,
		SourceRoots: c.sourceRoots, RestoreRoots: c.restoreRoots, Private: privateFiles(c), RestoreOwners: c.restoreOwners,
		NoObjectLock: c.noObjectLock,
	})
	if err != nil {
		return fmt.Errorf("recovery-point store: %w", err)
	}
	if created != "" {
		fmt.Fprintf(out, "Created the repository password %s (mode 0600). Every backup is encrypted with it: keep a copy somewhere safe; "+
			"without it no backup can be restored.\n", created)
	}
	cl, err := client.Dial(opts)
	if err != nil {
		return fmt.Errorf("connect to Temporal at %s (namespace %s): %w; start a server (or use --dev) or set TEMPORAL_ADDRESS", opts.HostPort, opts.Namespace, err)
	}
	defer cl.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := searchattributes.Ensure(ctx, cl, opts.Namespace); err != nil {
		return fmt.Errorf("%w; register them once by hand if this worker may not: %s", err, searchattributes.CLIFlags())
	}

	consoleAddr, stopConsole, err := startConsole(c, cl, out)
	if err != nil {
		return err
	}
	returned := make(chan struct{})
	defer close(returned)
	go func() {
		// The console stops first: its pages need the worker's client.
		select {
		case <-stop:
		case <-returned:
		}
		stopConsole()
	}()
	defer stopConsole() // before the client closes, when run returns otherwise
	if dev != nil {
		printDevBanner(out, c, dev, consoleAddr)
	}

	settings := protocol.Settings{SoftDeleteRetention: c.softDeleteRetention, Dev: c.dev || c.loadTest}
	switch {
	case c.softDeleteRetention != 0 && settings.Dev:
		fmt.Fprintf(out, "WARNING: every delete gets a soft-delete window of %s instead of the vault's 14 to 180 days (--soft-delete-retention, dev mode only)\n", c.softDeleteRetention)
	case c.softDeleteRetention != 0:
		fmt.Fprintf(out, "Every delete gets a soft-delete window of at least %s (--soft-delete-retention)\n", c.softDeleteRetention)
	}
	fmt.Fprintf(out, "Sources may lie in: %s\nRestores may write into: %s\n",
		describeRoots(c.sourceRoots, "--source-root"), describeRoots(c.restoreRoots, "--restore-root"))
	fmt.Fprintf(out, "Recovery Vault worker: Temporal %s, namespace %s, task queue %s (restore drills on %s, %d at once), store %s\n",
		opts.HostPort, opts.Namespace, protocol.TaskQueue, protocol.VerifyTaskQueue, max(c.maxVerifications, 1), st)
	backupworker.MaxVerifications = max(c.maxVerifications, 1)
	var notifier activities.Notifier = activities.LogNotifier{Logger: slog.New(slog.NewJSONHandler(out, nil))}
	if c.webhookURL != "" {
		notifier = activities.WebhookNotifier{URL: c.webhookURL}
		fmt.Fprintf(out, "Alerts are posted to %s\n", c.webhookURL)
	}
	return backupworker.New(cl, st, notifier, settings).Run(stop)
}

// privateFiles are the worker's own files, which no source may hold and no
// restore may write into: its data directory and its password file.
func privateFiles(c config) []string {
	private := []string{c.dataDir}
	if c.passwordFile != "" {
		private = append(private, c.passwordFile)
	}
	return private
}

// passwordName is the dev mode's repository password under --data-dir.
const passwordName = "repository.password"

// repositoryPassword is the secret that encrypts the store: from the file
// named by the flag, or the environment; dev mode makes one under
// --data-dir the first time and says so (created is then its path).
func repositoryPassword(c config) (password, created string, err error) {
	if c.passwordFile != "" {
		data, err := os.ReadFile(c.passwordFile)
		if err != nil {
			return "", "", fmt.Errorf("read the repository password: %w", err)
		}
		if password = strings.TrimRight(string(data), "\r\n"); password == "" {
			return "", "", fmt.Errorf("the repository password file %s is empty", c.passwordFile)
		}
		return password, "", nil
	}
	if password = os.Getenv("RECOVERYVAULT_REPOSITORY_PASSWORD"); password != "" {
		return password, "", nil
	}
	if !c.dev {
		return "", "", errors.New("the recovery-point store is encrypted with a repository password, and none was given: " +
			"set RECOVERYVAULT_REPOSITORY_PASSWORD or --repository-password-file FILE, the same on every worker; losing it loses every backup")
	}
	path := filepath.Join(c.dataDir, passwordName)
	if data, err := os.ReadFile(path); err == nil {
		return strings.TrimRight(string(data), "\r\n"), "", nil
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return "", "", err
	}
	password = base64.RawURLEncoding.EncodeToString(secret)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", "", fmt.Errorf("create the repository password: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString(password + "\n"); err != nil {
		return "", "", fmt.Errorf("write the repository password %s: %w", path, err)
	}
	return password, path, f.Sync()
}

func (c config) validate() error {
	if c.webhookURL != "" {
		if u, err := url.Parse(c.webhookURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("--webhook-url %q is not an http(s) URL", c.webhookURL)
		}
	}
	if c.consoleAddr != "" && c.identityHeader == "" {
		if !c.dev {
			return fmt.Errorf("--console-addr needs --identity-header outside dev mode: the console takes the operator's identity only from a header " +
				"set by the authenticating proxy in front of it, e.g. --identity-header X-Forwarded-Email")
		}
		if !console.Loopback(c.consoleAddr) {
			return fmt.Errorf("--console-addr %s is reachable from other machines, where anyone could type any name: "+
				"keep dev mode's console on 127.0.0.1, or put it behind an authenticating proxy with --identity-header", c.consoleAddr)
		}
	}
	if c.identityHeader != "" && !httpguts.ValidHeaderFieldName(c.identityHeader) {
		return fmt.Errorf("--identity-header %q is not a header name", c.identityHeader)
	}
	if c.consolePort < 0 || c.consolePort > 65535 {
		return fmt.Errorf("--console-port %d is not a port: give 1 to 65535, or 0 for no console", c.consolePort)
	}
	if c.dev && c.loadTest {
		return fmt.Errorf("--load-test is for an existing cluster: drop it with --dev, whose settings it copies")
	}
	if c.dev || c.loadTest {
		if c.softDeleteRetention < 0 {
			return fmt.Errorf("--soft-delete-retention %s is negative", c.softDeleteRetention)
		}
		return nil
	}
	if c.softDeleteRetention != 0 {
		days := c.softDeleteRetention.Hours() / 24
		if days < protocol.MinSoftDeleteRetentionDays || days > protocol.MaxSoftDeleteRetentionDays {
			return fmt.Errorf("--soft-delete-retention %s is refused outside dev mode: soft-deleted data is kept %d to %d days (336h to 4320h); shorter windows are for --dev only",
				c.softDeleteRetention, protocol.MinSoftDeleteRetentionDays, protocol.MaxSoftDeleteRetentionDays)
		}
	}
	return nil
}

// printDevBanner says where everything is and what to try.
func printDevBanner(out io.Writer, c config, srv *devserver.Server, consoleAddr string) {
	query := strings.ReplaceAll(url.QueryEscape(searchattributes.State+" = 'SoftDeleted'"), "+", "%20")
	console := "off (--console-port 0)"
	if consoleAddr != "" {
		console = "http://" + consoleAddr
	}
	fmt.Fprintf(out, `Recovery Vault dev mode
  Recovery Vault console  %s
  Temporal frontend       %s  (namespace default, task queue %s)
  Temporal Web UI         %s
  Data                    %s  (Temporal: %s, log: %s; recovery points: %s)

Try:
  go run ./starter protect --vault vault1 --item vm1 --source /path/to/a/directory
  go run ./starter delete  --vault vault1 --item vm1 --reason demo
  go run ./starter list --state SoftDeleted
  temporal workflow query --workflow-id backup-item/vault1/vm1 --name status
  Soft-deleted items in the Web UI: %s/namespaces/default/workflows?query=%s

`, console, srv.FrontendAddress(), protocol.TaskQueue, srv.UIAddress(), c.dataDir,
		devserver.DatabaseFile, devserver.LogFile, c.store, srv.UIAddress(), query)
}

// startConsole serves the web console when dev mode or --console-addr
// asks for it, and says where it is; its server stops with the process.
func startConsole(c config, cl client.Client, out io.Writer) (string, func(), error) {
	addr := c.consoleAddr
	if addr == "" && c.dev && c.consolePort != 0 {
		addr = fmt.Sprintf("127.0.0.1:%d", c.consolePort)
	}
	if addr == "" {
		return "", func() {}, nil
	}
	h, err := console.New(console.Options{Client: cl, IdentityHeader: c.identityHeader})
	if err != nil {
		return "", nil, err
	}
	bound, stop, err := console.Serve(addr, h, slog.Default())
	if err != nil {
		return "", nil, err
	}
	if !c.dev {
		fmt.Fprintf(out, "Recovery Vault console on http://%s, the operator's identity from header %s\n", bound, c.identityHeader)
	}
	return bound, stop, nil
}

// quietLogger keeps the SDK's own chatter to warnings and errors.
func quietLogger() sdklog.Logger {
	return sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
}
