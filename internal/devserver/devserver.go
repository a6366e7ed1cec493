// Package devserver runs a real Temporal server (the one `temporal server
// start-dev` runs) inside the worker process, persisted in a SQLite file so
// that timers survive a restart, with the Temporal Web UI beside it. Every
// listener is on 127.0.0.1.
package devserver

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/server/common/cluster"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/membership/static"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	"go.temporal.io/server/common/primitives"
	"go.temporal.io/server/schema/sqlite"
	"go.temporal.io/server/temporal"

	uiserver "github.com/temporalio/ui-server/v2/server"
	uiconfig "github.com/temporalio/ui-server/v2/server/config"
	uiserveroptions "github.com/temporalio/ui-server/v2/server/server_options"
)

const (
	host        = "127.0.0.1"
	clusterName = "active"
	// DatabaseFile and LogFile are kept under the data directory.
	DatabaseFile = "temporal.db"
	LogFile      = "temporal.log"
	lockFile     = "lock"
)

// Options configure a dev server.
type Options struct {
	DataDir   string
	Port      int // frontend gRPC
	UIPort    int // 0: no Web UI
	Namespace string
	// SearchAttributes are registered with the namespace when it is created.
	SearchAttributes map[string]enumspb.IndexedValueType
	// DynamicConfig overrides server settings by key, for tests.
	DynamicConfig map[string]any
}

// Server is a running dev server.
type Server struct {
	temporal temporal.Server
	ui       *uiserver.Server
	lock     *os.File
	frontend string
	uiAddr   string
}

// ErrDataDirInUse is returned when another running instance holds DataDir.
var ErrDataDirInUse = errors.New("data directory in use")

// Start starts the server and, when asked, the Web UI; it returns once the
// frontend accepts connections. Its errors are one sentence each.
func Start(o Options) (*Server, error) {
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	// Ports first: a start refused for a busy port leaves nothing behind.
	if err := CheckPort(o.Port, "--port"); err != nil {
		return nil, err
	}
	if err := CheckPort(o.UIPort, "--ui-port"); err != nil {
		return nil, err
	}
	// Private to the worker's user: it holds every item's history and,
	// with the default store, the data and its password.
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory %s: %w", o.DataDir, err)
	}
	if err := os.Chmod(o.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("make data directory %s private: %w", o.DataDir, err)
	}
	lock, err := lockDataDir(o.DataDir)
	if err != nil {
		return nil, err
	}
	s := &Server{lock: lock, frontend: net.JoinHostPort(host, strconv.Itoa(o.Port))}
	if err := s.start(o); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func (s *Server) start(o Options) error {
	internal := make([]int, 3)
	for i := range internal {
		p, err := freePort()
		if err != nil {
			return err
		}
		internal[i] = p
	}

	db := &config.SQL{
		PluginName:   sqliteplugin.PluginName,
		DatabaseName: filepath.Join(o.DataDir, DatabaseFile),
		// WAL and synchronous=normal roughly double the lifecycle throughput
		// of the single SQLite connection, and stay safe across a crash.
		ConnectAttributes: map[string]string{"mode": "rwc", "journal_mode": "wal", "synchronous": "normal"},
	}
	if _, err := os.Stat(db.DatabaseName); errors.Is(err, os.ErrNotExist) {
		if err := sqlite.SetupSchema(db); err != nil {
			return fmt.Errorf("create the Temporal database %s: %w", db.DatabaseName, err)
		}
	}
	ns, err := sqlite.NewNamespaceConfig(clusterName, o.Namespace, false, o.SearchAttributes)
	if err != nil {
		return fmt.Errorf("configure namespace %s: %w", o.Namespace, err)
	}
	if err := sqlite.CreateNamespaces(db, ns); err != nil {
		return fmt.Errorf("create namespace %s in %s: %w", o.Namespace, db.DatabaseName, err)
	}

	service := func(grpc int) config.Service {
		return config.Service{RPC: config.RPC{GRPCPort: grpc, BindOnIP: host}}
	}
	cfg := &config.Config{
		Global: config.Global{Membership: config.Membership{MaxJoinDuration: 30 * time.Second, BroadcastAddress: host}},
		Persistence: config.Persistence{
			DefaultStore:     "sqlite",
			VisibilityStore:  "sqlite",
			NumHistoryShards: 1,
			DataStores:       map[string]config.DataStore{"sqlite": {SQL: db}},
		},
		ClusterMetadata: &cluster.Config{
			FailoverVersionIncrement: 10,
			MasterClusterName:        clusterName,
			CurrentClusterName:       clusterName,
			ClusterInformation: map[string]cluster.ClusterInformation{clusterName: {
				Enabled: true, InitialFailoverVersion: 1, RPCAddress: s.frontend,
			}},
		},
		DCRedirectionPolicy: config.DCRedirectionPolicy{Policy: "noop"},
		Services: map[string]config.Service{
			"frontend": service(o.Port),
			"history":  service(internal[0]),
			"matching": service(internal[1]),
			"worker":   service(internal[2]),
		},
		Archival: config.Archival{
			History:    config.HistoryArchival{State: "disabled"},
			Visibility: config.VisibilityArchival{State: "disabled"},
		},
		NamespaceDefaults: config.NamespaceDefaults{Archival: config.ArchivalNamespaceDefaults{
			History:    config.HistoryArchivalNamespaceDefaults{State: "disabled"},
			Visibility: config.VisibilityArchivalNamespaceDefaults{State: "disabled"},
		}},
		PublicClient: config.PublicClient{HostPort: s.frontend},
	}
	logger := log.NewZapLogger(log.BuildZapLogger(log.Config{Level: "warn", OutputFile: filepath.Join(o.DataDir, LogFile)}))
	// Static hosts instead of ringpop membership: a restart with new
	// internal ports would otherwise wait for the old members to expire.
	hosts := map[primitives.ServiceName]static.Hosts{}
	for name, svc := range cfg.Services {
		hosts[primitives.ServiceName(name)] = static.SingleLocalHost(net.JoinHostPort(host, strconv.Itoa(svc.RPC.GRPCPort)))
	}
	srv, err := temporal.NewServer(
		temporal.WithConfig(cfg),
		temporal.ForServices(temporal.DefaultServices),
		temporal.WithStaticHosts(hosts),
		temporal.WithLogger(logger),
		temporal.WithDynamicConfigClient(dynamicConfig(o.DynamicConfig)),
	)
	if err != nil {
		return fmt.Errorf("configure the Temporal server: %w", err)
	}
	if err := srv.Start(); err != nil {
		return fmt.Errorf("start the Temporal server (its log is %s): %w", filepath.Join(o.DataDir, LogFile), err)
	}
	s.temporal = srv
	if err := privateFiles(o.DataDir); err != nil {
		return err
	}

	if o.UIPort != 0 {
		s.uiAddr = net.JoinHostPort(host, strconv.Itoa(o.UIPort))
		s.ui = uiserver.NewServer(uiserveroptions.WithConfigProvider(&uiconfig.Config{
			Host:                host,
			Port:                o.UIPort,
			TemporalGRPCAddress: s.frontend,
			EnableUI:            true,
			HideLogs:            true,
			DisableNewsFetch:    true,
			CORS:                uiconfig.CORS{CookieInsecure: true},
		}))
		failed := make(chan error, 1)
		go func() { failed <- s.ui.Start() }()
		// Start does not return while it serves: wait until it answers, or
		// report why it could not.
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			select {
			case err := <-failed:
				return fmt.Errorf("start the Web UI on %s: %w", s.uiAddr, err)
			default:
			}
			if conn, err := net.DialTimeout("tcp", s.uiAddr, time.Second); err == nil {
				conn.Close()
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("the Web UI did not come up on %s", s.uiAddr)
			}
		}
	}
	return nil
}

// MaxInFlightUpdates is how many updates may be in flight at one workflow
// (the server's default is 10): a vault's deletes in a burst.
const MaxInFlightUpdates = 5000

// MaxBlobBytes is the largest payload the server takes in one event (its
// default is 2 MiB).
const MaxBlobBytes = 1 << 20

func dynamicConfig(overrides map[string]any) dynamicconfig.StaticClient {
	dc := dynamicconfig.StaticClient{
		// Search attributes registered at start are usable at once.
		dynamicconfig.ForceSearchAttributesCacheRefreshOnRead.Key(): true,
		// Every delete asks its vault by update, and a burst of them is in
		// flight at once: past this limit the server refuses an update and,
		// in refusing it, aborts every other one in flight at the vault,
		// which their senders then resend, again and again.
		dynamicconfig.WorkflowExecutionMaxInFlightUpdates.Key(): MaxInFlightUpdates,
		// No message of ours comes near it; a client's larger one is
		// refused at the door.
		dynamicconfig.BlobSizeLimitError.Key(): MaxBlobBytes,
		dynamicconfig.BlobSizeLimitWarn.Key():  MaxBlobBytes / 4,
	}
	for k, v := range overrides {
		dc[dynamicconfig.MakeKey(k)] = v
	}
	return dc
}

// FrontendAddress is host:port of the frontend.
func (s *Server) FrontendAddress() string { return s.frontend }

// UIAddress is the Web UI's URL, or "" without one.
func (s *Server) UIAddress() string {
	if s.uiAddr == "" {
		return ""
	}
	return "http://" + s.uiAddr
}

// Stop stops the UI and the server and releases the data directory.
func (s *Server) Stop() {
	if s.ui != nil {
		s.ui.Stop()
	}
	if s.temporal != nil {
		_ = s.temporal.Stop()
	}
	if s.lock != nil {
		_ = s.lock.Close()
	}
}

// lockDataDir takes an exclusive lock that the kernel releases when the
// process dies, so a crash never leaves the directory locked.
func lockDataDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock of data directory %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: %s is held by another running Recovery Vault; stop it or choose another --data-dir", ErrDataDirInUse, dir)
	}
	return f, nil
}

// CheckPort says in a sentence that port (0: none) on 127.0.0.1 is taken,
// naming the flag that chooses another.
func CheckPort(port int, flag string) error {
	if port != 0 && !portFree(port) {
		return fmt.Errorf("port %d on %s is in use: stop what holds it or choose another with %s", port, host, flag)
	}
	return nil
}

func portFree(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", host+":0")
	if err != nil {
		return 0, fmt.Errorf("find a free port on %s: %w", host, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// privateFiles makes the files the server created in dir, its database
// (SQLite gives its journal files the database's mode) and its log,
// readable by the worker's user alone.
func privateFiles(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Type().IsRegular() {
			if err := os.Chmod(filepath.Join(dir, e.Name()), 0o600); err != nil {
				return fmt.Errorf("make %s private: %w", e.Name(), err)
			}
		}
	}
	return nil
}
