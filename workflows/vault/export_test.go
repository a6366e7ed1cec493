package vault

// What the black-box tests of package vault_test need to see.

const (
	MaxClosedRequests      = maxClosedRequests
	MaxPendingPerRequester = maxPendingPerRequester
)
