package protocol

import (
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// AlertSender delivers queued alerts one at a time in its own coroutine, so
// a slow webhook never holds up a timer or a signal.
type AlertSender struct {
	queue *[]Alert
	busy  bool
}

func StartAlertSender(ctx workflow.Context, queue *[]Alert) *AlertSender {
	s := &AlertSender{queue: queue}
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
			if err := workflow.ExecuteActivity(actx, ActivityNotify, alert).Get(ctx, nil); err != nil {
				workflow.GetLogger(ctx).Error("Alert not delivered after retries", "kind", alert.Kind, "error", err)
			}
			*s.queue = slices.Delete(*s.queue, 0, 1)
			s.busy = false
		}
	})
	return s
}

// maxQueuedAlerts bounds the alerts waiting, which cross continue-as-new.
const maxQueuedAlerts = 100

// QueueAlert queues an alert. Past maxQueuedAlerts it is folded into the
// last waiting one of its kind, never into the first: that may be on its way.
func QueueAlert(queue *[]Alert, a Alert) {
	a = a.Bounded()
	q := *queue
	if len(q) >= maxQueuedAlerts {
		for i := len(q) - 1; i >= 1; i-- {
			if q[i].Kind == a.Kind {
				q[i].More += 1 + a.More
				return
			}
		}
	}
	*queue = append(q, a)
}

// Drained is true when everything queued has been delivered or given up.
func (s *AlertSender) Drained() bool { return !s.busy && len(*s.queue) == 0 }
