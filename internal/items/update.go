package items

// Updates are sent the way every client of ours sends them: the same update
// ID on every try, retried while the server says the workflow is not ready.

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
)

// Finished says whether an update or query failed because its workflow
// takes no more operations: it does not exist, or it has completed (an
// item after its purge).
func Finished(err error) bool {
	var nf *serviceerror.NotFound
	return errors.As(err, &nf) || strings.Contains(err.Error(), "workflow execution already completed")
}

// Execute sends the update and decodes its result. When an update meets a
// workflow task that completes the run (a continue-as-new), the server
// aborts it as "not ready" and the workflow carries on; sending it again
// under the same ID runs it once, in the new run.
func Execute(ctx context.Context, c client.Client, opts client.UpdateWorkflowOptions, result any) error {
	if opts.UpdateID == "" {
		opts.UpdateID = uuid.NewString()
	}
	opts.WaitForStage = client.WorkflowUpdateStageCompleted
	for delay := 100 * time.Millisecond; ; delay = min(2*delay, 2*time.Second) {
		h, err := c.UpdateWorkflow(ctx, opts)
		if err == nil {
			err = h.Get(ctx, result)
		}
		var notReady *serviceerror.WorkflowNotReady
		if !errors.As(err, &notReady) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
		}
	}
}
