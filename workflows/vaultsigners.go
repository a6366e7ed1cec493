package workflows

import (
	"fmt"
	"slices"
	"strings"

	"go.temporal.io/sdk/workflow"
)

// UpdateSetAllowedSigners sets, replaces or removes a vault's allowed
// signers (docs/contract.md section 4).
const UpdateSetAllowedSigners = "setAllowedSigners"

// SetAllowedSignersRequest is the payload of setAllowedSigners: the text of
// an allowed_signers file, empty to remove them.
type SetAllowedSignersRequest struct {
	AllowedSigners string `json:"allowedSigners"`
	RequestedBy    string `json:"requestedBy,omitempty"`
	Reason         string `json:"reason,omitempty"`
	Signature
}

const setAllowedSignersExample = `{"allowedSigners": "alice@example.com ssh-ed25519 AAAA...\nbob@example.com ssh-ed25519 AAAA...", "requestedBy": "alice@example.com"}`

// setAllowedSigners makes a vault require signatures, or changes whose. The
// first signers follow the vault's rules for critical operations (under
// multi-user authorization they wait for approval); replacing or removing
// them is critical and must be signed with a key listed now.
func (v *vault) setAllowedSigners(ctx workflow.Context, req SetAllowedSignersRequest, input []byte) (VaultStatus, error) {
	if err := v.ready(ctx); err != nil {
		return VaultStatus{}, err
	}
	who := actor{by: requester(req.RequestedBy)}
	signers, err := parseAllowedSigners(req.AllowedSigners)
	switch {
	case err != nil:
		err = &Refusal{Message: err.Error() + ": nothing changed"}
	case len(signers) == 0 && v.st.AllowedSigners == "":
		err = &Refusal{Message: fmt.Sprintf("vault %s holds no allowed signers, and none were given: send the text of an allowed_signers file", v.id)}
	case len(signers) > 0 && v.st.Mua.Enabled:
		err = v.keysOfApprovers(req.AllowedSigners, v.st.Mua.Approvers)
	}
	if err != nil {
		v.refuse(ctx, UpdateSetAllowedSigners, who, err)
		return VaultStatus{}, refused(err)
	}
	if len(signers) == 0 {
		req.AllowedSigners = ""
	}
	if who, err = v.signedBy(ctx, UpdateSetAllowedSigners, input, who, v.st.AllowedSigners != ""); err != nil {
		return VaultStatus{}, err
	}
	if v.st.Mua.Enabled {
		summary := "remove the allowed signers: critical operations would no longer be signed"
		if len(signers) > 0 {
			summary = "set the allowed signers to " + signerSummary(signers)
		}
		req.Signature = Signature{}
		return v.openRequest(ctx, MuaRequest{Operation: UpdateSetAllowedSigners, RequestedBy: who.by, Signer: who.signer,
			Reason: req.Reason, AllowedSigners: &req, Summary: summary})
	}
	v.changeSigners(ctx, who, req.AllowedSigners, req.Reason)
	return v.status(), nil
}

func (v *vault) changeSigners(ctx workflow.Context, who actor, text, reason string) {
	detail := "allowed signers removed: critical operations are no longer signed"
	if signers, _ := parseAllowedSigners(text); len(signers) > 0 {
		detail = "allowed signers set to " + signerSummary(signers) + ": every critical operation must now be signed"
	}
	if reason != "" {
		detail += "; reason: " + reason
	}
	v.st.AllowedSigners = strings.TrimSpace(text)
	v.audit(ctx, UpdateSetAllowedSigners, who, OutcomeAccepted, detail)
	// A request its keys no longer stand behind waits for nothing.
	signers, _ := parseAllowedSigners(v.st.AllowedSigners)
	v.closePending(ctx, func(r MuaRequest) bool { return unbacked(r, signers, v.st.Mua.Approvers) != "" }, RequestRejected,
		func(r MuaRequest) string {
			return unbacked(r, signers, v.st.Mua.Approvers) + ": send the operation again"
		})
	v.version++
}

// unbacked says why the keys listed now no longer stand behind pending
// request r: the key that signed it is gone, or no approver but its
// requester holds a listed key; "" when they still do.
func unbacked(r MuaRequest, signers []allowedSigner, approvers []string) string {
	if fp := fingerprintOf(r.Signer); fp != "" && !listedKey(signers, fp, r.RequestedBy) {
		return fmt.Sprintf("the key %s that signed request %s is no longer listed for %s", fp, r.RequestID, r.RequestedBy)
	}
	if len(signers) == 0 {
		return ""
	}
	for _, a := range approvers {
		if !sameIdentity(a, r.RequestedBy) && slices.ContainsFunc(signers, func(s allowedSigner) bool { return s.listedFor(a) }) {
			return ""
		}
	}
	return fmt.Sprintf("no approver but %s holds a listed key: request %s could no longer be approved", r.RequestedBy, r.RequestID)
}

// listedKey is true when the key of fingerprint fp is listed for by.
func listedKey(signers []allowedSigner, fp, by string) bool {
	return slices.ContainsFunc(signers, func(s allowedSigner) bool { return s.Fingerprint == fp && s.listedFor(by) })
}

// signerSummary names every key: "alice@example.com (SHA256:...), ...".
func signerSummary(signers []allowedSigner) string {
	var parts []string
	for _, s := range signers {
		parts = append(parts, strings.Join(s.Principals, ",")+" ("+s.Fingerprint+")")
	}
	return Plural(len(signers), "key") + ": " + strings.Join(parts, ", ")
}
