package workflows

// What the black-box tests of package workflows_test need to see.

const (
	MaxAuditEntries  = maxAuditEntries
	MaxHistoryLength = maxHistoryLength
)

var StartAlertSender = startAlertSender

func (s *alertSender) Drained() bool { return s.drained() }

const (
	MaxClosedRequests      = maxClosedRequests
	MaxPendingPerRequester = maxPendingPerRequester
)
