package vault

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"recoveryvault/internal/signing"
	"recoveryvault/workflows/protocol"
)

// Bounds of multi-user authorization.
const (
	DefaultApprovalWindow = 24 * time.Hour
	MinApprovalWindow     = time.Minute
	MaxApprovalWindow     = 30 * 24 * time.Hour
	maxApprovers          = 20
	// maxPendingRequests bounds what a flood of requests can make a vault
	// carry; maxClosedRequests how many decided ones it keeps to show.
	maxPendingRequests = 100
	// maxPendingPerRequester keeps one requester from filling the queue.
	maxPendingPerRequester = 10
	maxClosedRequests      = 50
)

// MuaSettings are a vault's multi-user authorization: while enabled, a
// critical operation waits for one of Approvers other than its requester.
type MuaSettings struct {
	Enabled   bool     `json:"enabled"`
	Approvers []string `json:"approvers,omitempty"`
	// ApprovalWindow is a duration ("24h"): how long a request may wait.
	ApprovalWindow string `json:"approvalWindow,omitempty"`
}

func (m MuaSettings) window() time.Duration {
	if d, err := time.ParseDuration(m.ApprovalWindow); err == nil && d > 0 {
		return d
	}
	return DefaultApprovalWindow
}

func (m MuaSettings) String() string {
	if !m.Enabled {
		return "multi-user authorization off"
	}
	return fmt.Sprintf("multi-user authorization on: approvers %s, requests expire after %s",
		strings.Join(m.Approvers, ", "), m.ApprovalWindow)
}

// ChangeMua applies an enableMua request to the current settings, or
// refuses it in a sentence.
func ChangeMua(vaultID string, cur MuaSettings, req protocol.EnableMuaRequest) (MuaSettings, error) {
	if req.Enabled != nil && !*req.Enabled {
		if !cur.Enabled {
			return cur, &protocol.Refusal{Message: fmt.Sprintf("multi-user authorization of vault %s is already off", vaultID)}
		}
		if len(req.Approvers) > 0 || req.ApprovalWindow != "" {
			return cur, &protocol.Refusal{Message: `"enabled": false turns multi-user authorization off: send it without approvers or approvalWindow`}
		}
		return MuaSettings{}, nil
	}
	next := MuaSettings{Enabled: true, Approvers: cur.Approvers, ApprovalWindow: cur.ApprovalWindow}
	if len(req.Approvers) > 0 {
		approvers, err := approverList(req.Approvers)
		if err != nil {
			return cur, err
		}
		next.Approvers = approvers
	}
	if len(next.Approvers) == 0 {
		return cur, &protocol.Refusal{Message: `multi-user authorization needs approvers: send {"approvers": ["alice", "bob"], "approvalWindow": "24h"}`}
	}
	if req.ApprovalWindow != "" {
		d, err := time.ParseDuration(req.ApprovalWindow)
		if err != nil || d < MinApprovalWindow || d > MaxApprovalWindow {
			return cur, &protocol.Refusal{Message: fmt.Sprintf("approvalWindow %q is not a duration from %s to %s, such as \"24h\"",
				req.ApprovalWindow, MinApprovalWindow, protocol.FormatRemaining(MaxApprovalWindow))}
		}
		next.ApprovalWindow = d.String()
	}
	if next.ApprovalWindow == "" {
		next.ApprovalWindow = DefaultApprovalWindow.String()
	}
	return next, nil
}

func approverList(names []string) ([]string, error) {
	if len(names) > maxApprovers {
		return nil, &protocol.Refusal{Message: fmt.Sprintf("%d approvers are too many: name at most %d", len(names), maxApprovers)}
	}
	var out []string
	for _, n := range names {
		n = strings.TrimSpace(n)
		if signing.ReservedName(n) || len(n) > 256 {
			return nil, &protocol.Refusal{Message: fmt.Sprintf("approver %q is not a name: use the identity each approver signs requests with", n)}
		}
		if slices.ContainsFunc(out, func(o string) bool { return signing.SameIdentity(o, n) }) {
			return nil, &protocol.Refusal{Message: fmt.Sprintf("approver %q is named twice", n)}
		}
		out = append(out, n)
	}
	return out, nil
}

// otherApprovers are the approvers who may approve what by asks.
func (m MuaSettings) otherApprovers(by string) []string {
	var others []string
	for _, a := range m.Approvers {
		if !signing.SameIdentity(a, by) {
			others = append(others, a)
		}
	}
	return others
}

// CheckRequester refuses a critical request that no one else could
// approve: one that does not say who asks, or whose requester is the only
// approver.
func CheckRequester(vaultID string, m MuaSettings, by string) error {
	if signing.ReservedName(by) {
		return &protocol.Refusal{Message: fmt.Sprintf(
			"multi-user authorization of vault %s is on: name yourself in requestedBy, so that someone else can approve", vaultID)}
	}
	if len(m.otherApprovers(by)) == 0 {
		return &protocol.Refusal{Message: fmt.Sprintf(
			"%s is the only approver of vault %s, and no one may approve their own request: another person must ask, or add approvers", by, vaultID)}
	}
	return nil
}

// CriticalSoftDeleteChange is true for a change that weakens soft delete:
// turning it off or shortening the retention.
func CriticalSoftDeleteChange(cur, next protocol.SoftDeleteSettings) bool {
	return (next.State == protocol.SoftDeleteDisabled && cur.State != protocol.SoftDeleteDisabled) || next.RetentionDays < cur.RetentionDays
}

// CriticalMuaChange is true for turning multi-user authorization off or
// changing who approves while it is on: either could let one person act
// alone. Turning it on is not critical.
func CriticalMuaChange(cur, next MuaSettings) bool {
	return cur.Enabled && (!next.Enabled || !slices.Equal(cur.Approvers, next.Approvers) || cur.ApprovalWindow != next.ApprovalWindow)
}

// actor is who asked for the request.
func actorOf(r protocol.MuaRequest) actor { return actor{by: r.RequestedBy, signer: r.Signer} }

// pendingDetail tells the requester who may approve and until when.
func pendingDetail(m MuaSettings, by string, expires time.Time) string {
	return fmt.Sprintf("pending approval by %s until %s; nothing changes unless approved by then",
		strings.Join(m.otherApprovers(by), " or "), expires.UTC().Format(time.RFC3339))
}

// CheckDecision says whether by may approve (or, with approve false,
// reject) request r now, or why not. A requester may withdraw a request
// but never approve it.
func CheckDecision(vaultID string, m MuaSettings, r protocol.MuaRequest, by string, approve bool, now time.Time) error {
	verb := "approve"
	if !approve {
		verb = "reject"
	}
	switch {
	case r.State != protocol.RequestPending:
		return &protocol.Refusal{Message: fmt.Sprintf("request %s is %s, not pending: nothing to %s", r.RequestID, r.State, verb)}
	case !now.Before(r.ExpiresAt):
		return &protocol.Refusal{Message: fmt.Sprintf("request %s expired at %s: send the operation again", r.RequestID, r.ExpiresAt.UTC().Format(time.RFC3339))}
	case signing.ReservedName(by):
		return &protocol.Refusal{Message: fmt.Sprintf("to %s request %s, name yourself in requestedBy", verb, r.RequestID)}
	case approve && signing.SameIdentity(by, r.RequestedBy):
		return &protocol.Refusal{Message: fmt.Sprintf("%s requested %s and cannot approve it: another approver of vault %s must", by, r.RequestID, vaultID)}
	case len(m.otherApprovers(by)) == len(m.Approvers) && (approve || !signing.SameIdentity(by, r.RequestedBy)):
		return &protocol.Refusal{Message: fmt.Sprintf("%s is not an approver of vault %s: its approvers are %s", by, vaultID, strings.Join(m.Approvers, ", "))}
	}
	return nil
}
