package workflows

import (
	"go.temporal.io/sdk/worker"
)

// ReplayHistoryFile replays a saved history (JSON, as `temporal workflow
// show --output json` writes it) against this code. An error means the code
// would break items that are running now: fix it, or version the change.
func ReplayHistoryFile(path string) error {
	r := worker.NewWorkflowReplayer()
	r.RegisterWorkflow(BackupItem)
	return r.ReplayWorkflowHistoryFromJSONFile(nil, path)
}
