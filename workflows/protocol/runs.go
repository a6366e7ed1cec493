package protocol

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// errForgedState refuses a start input that carries state it may not.
var errForgedState = errors.New(`"state" is carried only by the workflow's own continue-as-new: start it without "state"`)

// CheckIdentity refuses a run under another ID than its input names, or on
// a cron schedule: data is kept by ID.
func CheckIdentity(ctx workflow.Context, wantID string) error {
	info := workflow.GetInfo(ctx)
	if info.WorkflowExecution.ID != wantID {
		return fmt.Errorf("workflow ID %q does not match its input: start it with workflow ID %q", info.WorkflowExecution.ID, wantID)
	}
	if info.CronSchedule != "" {
		return errors.New("this workflow cannot run on a cron schedule: start it without --cron")
	}
	return nil
}

// CheckCarriedState accepts carried state only from a run it continues that
// was ours: our type, on our task queue, ended by continue-as-new.
func CheckCarriedState(ctx workflow.Context) error {
	info := workflow.GetInfo(ctx)
	if info.ContinuedExecutionRunID == "" || info.Attempt > 1 {
		return errForgedState
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		// Until the server answers: the state is neither used nor lost.
		RetryPolicy: &temporal.RetryPolicy{MaximumInterval: time.Minute, NonRetryableErrorTypes: []string{ErrTypeForbidden}},
	})
	var prev RunInfo
	if err := workflow.ExecuteActivity(actx, ActivityDescribeRun, info.WorkflowExecution.ID, info.ContinuedExecutionRunID).Get(ctx, &prev); err != nil {
		return fmt.Errorf("the run this one continues could not be checked: %s", Message(err))
	}
	if !prev.ContinuedAsNew || prev.WorkflowType != info.WorkflowType.Name || prev.TaskQueue != TaskQueue {
		return fmt.Errorf("carried state refused: the run it continues (%s) is a %q on task queue %q, not a %s of ours on %q; nothing was done with it",
			info.ContinuedExecutionRunID, prev.WorkflowType, prev.TaskQueue, info.WorkflowType.Name, TaskQueue)
	}
	return nil
}
