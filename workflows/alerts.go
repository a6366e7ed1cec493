package workflows

import (
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"recoveryvault/activities"
)

// alertSender delivers queued alerts one at a time in a coroutine of its
// own, so a slow webhook never holds up a timer or a signal. The queue is
// part of the workflow's state and crosses continue-as-new.
type alertSender struct {
	queue *[]activities.Alert
	busy  bool
}

func startAlertSender(ctx workflow.Context, queue *[]activities.Alert) *alertSender {
	s := &alertSender{queue: queue}
	workflow.Go(ctx, func(ctx workflow.Context) {
		actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			StartToCloseTimeout: 30 * time.Second,
			RetryPolicy: &temporal.RetryPolicy{
				InitialInterval: 2 * time.Second,
				MaximumInterval: time.Minute,
				MaximumAttempts: 10,
			},
		})
		for {
			if err := workflow.Await(ctx, func() bool { return len(*s.queue) > 0 }); err != nil {
				return
			}
			s.busy = true
			alert := (*s.queue)[0]
			if err := workflow.ExecuteActivity(actx, acts.Notify, alert).Get(ctx, nil); err != nil {
				workflow.GetLogger(ctx).Error("Alert not delivered after retries", "kind", alert.Kind, "error", err)
			}
			*s.queue = slices.Delete(*s.queue, 0, 1)
			s.busy = false
		}
	})
	return s
}

// drained is true when everything queued has been delivered or given up.
func (s *alertSender) drained() bool { return !s.busy && len(*s.queue) == 0 }

// noChange starts the detail of an accepted operation that changed nothing.
const noChange = "no change: "

// appendAudit adds an entry and keeps the list bounded. Over the bound,
// rejected and no-op entries go first: a flood of malformed or repeated
// requests must not push the record of a real operation out of the status.
func appendAudit(list []AuditEntry, e AuditEntry) []AuditEntry {
	list = append(list, e)
	for len(list) > maxAuditEntries {
		i := slices.IndexFunc(list, func(e AuditEntry) bool {
			return e.Outcome == OutcomeRejected || strings.HasPrefix(e.Detail, noChange)
		})
		if i < 0 {
			i = 0
		}
		list = slices.Delete(list, i, i+1)
	}
	return list
}
