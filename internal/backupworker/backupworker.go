// Package backupworker wires the BackupItem and Vault workflows and their
// activities to a Temporal worker; the worker command and the tests share it.
package backupworker

import (
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"recoveryvault/activities"
	"recoveryvault/store"
	"recoveryvault/workflows/item"
	"recoveryvault/workflows/protocol"
	"recoveryvault/workflows/vault"
)

// StickyCacheSize is how many workflows a worker process keeps in memory
// between their tasks (the SDK's default is 10,000). An item evicted from
// it is replayed from its whole history at its next task: a vault of 10,000
// items at the default evicts the items of a burst of deletes, and each
// delete then costs a replay. An idle item takes some tens of kilobytes.
const StickyCacheSize = 30_000

// Options are the worker's. A burst of deletes queues thousands of
// workflow tasks at once: more pollers take them sooner, and a task left
// waiting on this worker for 5 seconds (the SDK's default) would go back to
// the shared queue, to be replayed from its history wherever it lands.
// At most 256 activities run at once (the SDK's default is 1,000): a
// thousand first backups at once only wait, with their memory, for their
// turn to open a repository.
var Options = worker.Options{
	MaxConcurrentWorkflowTaskPollers:   8,
	MaxConcurrentActivityExecutionSize: 256,
	StickyScheduleToStartTimeout:       20 * time.Second,
}

func init() { worker.SetStickyWorkflowCacheSize(StickyCacheSize) }

// New returns a worker for the backup task queue: recovery points in st,
// alerts through notifier (log lines when nil), and the worker's settings.
func New(c client.Client, st *store.Store, notifier activities.Notifier, s protocol.Settings) *Worker {
	// What the store does is the store's to say.
	s.StoreLocks, s.ObjectLock = st.Locks(), st.ObjectLock()
	acts := &activities.Activities{Store: st, Client: c, Notifier: notifier, Settings: s}
	w := worker.New(c, protocol.TaskQueue, Options)
	w.RegisterWorkflowWithOptions(item.NewBackupItem(s), workflow.RegisterOptions{Name: protocol.WorkflowType})
	w.RegisterWorkflowWithOptions(vault.NewVault(s), workflow.RegisterOptions{Name: protocol.VaultWorkflowType})
	w.RegisterActivity(acts)
	drills := worker.New(c, protocol.VerifyTaskQueue, worker.Options{MaxConcurrentActivityExecutionSize: MaxVerifications})
	drills.RegisterActivityWithOptions(acts.Verify, activity.RegisterOptions{Name: protocol.ActivityVerify})
	return &Worker{main: w, drills: drills}
}

// MaxVerifications is how many restore drills a worker runs at once: each
// reads a whole recovery point, and backups must not wait for them.
var MaxVerifications = 2

// Worker serves the backup task queue and, with a limit of its own, the
// restore drills' queue.
type Worker struct{ main, drills worker.Worker }

// Start starts both; Stop stops both.
func (w *Worker) Start() error {
	if err := w.drills.Start(); err != nil {
		return err
	}
	return w.main.Start()
}

func (w *Worker) Stop() {
	w.main.Stop()
	w.drills.Stop()
}

// Run serves until stop is closed or a signal ends the process.
func (w *Worker) Run(stop <-chan any) error {
	if err := w.drills.Start(); err != nil {
		return err
	}
	defer w.drills.Stop()
	return w.main.Run(stop)
}
