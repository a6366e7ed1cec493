package workflows

import "time"

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

// VerifySigned checks input as the vault does, against allowed signers text.
func VerifySigned(allowedSigners, op, workflowID string, input []byte, by string, now time.Time, seen []SeenNonce) (Signer, error) {
	signers, err := parseAllowedSigners(allowedSigners)
	if err != nil {
		return Signer{}, err
	}
	s, _, err := verifySignature(signers, op, workflowID, input, by, withinSkew(now), seen)
	return s, err
}

var CheckApproval = checkApproval

const MaxDeleteRetry = maxDeleteRetry

// WindowOverride is a worker's window as a forged message would claim it.
func WindowOverride(d time.Duration) windowSetting { return windowSetting{Window: d, Replace: true} }
