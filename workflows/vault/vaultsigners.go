package vault

import (
	"fmt"
	"slices"
	"strings"

	"go.temporal.io/sdk/workflow"

	"recoveryvault/internal/signing"
	"recoveryvault/workflows/protocol"
)

// UpdateSetAllowedSigners sets, replaces or removes a vault's allowed
// signers (docs/contract.md section 4).
const UpdateSetAllowedSigners = "setAllowedSigners"

const setAllowedSignersExample = `{"allowedSigners": "alice@example.com ssh-ed25519 AAAA...\nbob@example.com ssh-ed25519 AAAA...", "requestedBy": "alice@example.com"}`

// setAllowedSigners makes a vault require signatures, or changes whose. The
// first signers follow the vault's rules for critical operations (under
// multi-user authorization they wait for approval); replacing or removing
// them is critical and must be signed with a key listed now.
func (v *vault) setAllowedSigners(ctx workflow.Context, req protocol.SetAllowedSignersRequest, input []byte) (VaultStatus, error) {
	if err := v.ready(ctx); err != nil {
		return VaultStatus{}, err
	}
	who := actor{by: protocol.Requester(req.RequestedBy)}
	signers, err := signing.ParseAllowedSigners(req.AllowedSigners)
	switch {
	case err != nil:
		err = &protocol.Refusal{Message: err.Error() + ": nothing changed"}
	case len(signers) == 0 && v.st.AllowedSigners == "":
		err = &protocol.Refusal{Message: fmt.Sprintf("vault %s holds no allowed signers, and none were given: send the text of an allowed_signers file", v.id)}
	case len(signers) > 0 && v.st.Mua.Enabled:
		err = v.keysOfApprovers(req.AllowedSigners, v.st.Mua.Approvers)
	}
	if err != nil {
		v.refuse(ctx, UpdateSetAllowedSigners, who, err)
		return VaultStatus{}, protocol.Refused(err)
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
		req.Signature = signing.Signature{}
		return v.openRequest(ctx, protocol.MuaRequest{Operation: UpdateSetAllowedSigners, RequestedBy: who.by, Signer: who.signer,
			Reason: req.Reason, AllowedSigners: &req, Summary: summary})
	}
	v.changeSigners(ctx, who, req.AllowedSigners, req.Reason)
	return v.status(), nil
}

func (v *vault) changeSigners(ctx workflow.Context, who actor, text, reason string) {
	detail := "allowed signers removed: critical operations are no longer signed"
	if signers, _ := signing.ParseAllowedSigners(text); len(signers) > 0 {
		detail = "allowed signers set to " + signerSummary(signers) + ": every critical operation must now be signed"
	}
	if reason != "" {
		detail += "; reason: " + reason
	}
	v.st.AllowedSigners = strings.TrimSpace(text)
	v.audit(ctx, UpdateSetAllowedSigners, who, protocol.OutcomeAccepted, detail)
	// A request its keys no longer stand behind waits for nothing.
	signers, _ := signing.ParseAllowedSigners(v.st.AllowedSigners)
	v.closePending(ctx, func(r protocol.MuaRequest) bool { return unbacked(r, signers, v.st.Mua.Approvers) != "" }, protocol.RequestRejected,
		func(r protocol.MuaRequest) string {
			return unbacked(r, signers, v.st.Mua.Approvers) + ": send the operation again"
		})
	v.version++
}

// unbacked says why the keys listed now no longer stand behind pending
// request r: the key that signed it is gone, or no approver but its
// requester holds a listed key; "" when they still do.
func unbacked(r protocol.MuaRequest, signers []signing.AllowedSigner, approvers []string) string {
	if fp := signing.FingerprintOf(r.Signer); fp != "" && !listedKey(signers, fp, r.RequestedBy) {
		return fmt.Sprintf("the key %s that signed request %s is no longer listed for %s", fp, r.RequestID, r.RequestedBy)
	}
	if len(signers) == 0 {
		return ""
	}
	for _, a := range approvers {
		if !signing.SameIdentity(a, r.RequestedBy) && slices.ContainsFunc(signers, func(s signing.AllowedSigner) bool { return s.ListedFor(a) }) {
			return ""
		}
	}
	return fmt.Sprintf("no approver but %s holds a listed key: request %s could no longer be approved", r.RequestedBy, r.RequestID)
}

// listedKey is true when the key of fingerprint fp is listed for by.
func listedKey(signers []signing.AllowedSigner, fp, by string) bool {
	return slices.ContainsFunc(signers, func(s signing.AllowedSigner) bool { return s.Fingerprint == fp && s.ListedFor(by) })
}

// signerSummary names every key: "alice@example.com (SHA256:...), ...".
func signerSummary(signers []signing.AllowedSigner) string {
	var parts []string
	for _, s := range signers {
		parts = append(parts, strings.Join(s.Principals, ",")+" ("+s.Fingerprint+")")
	}
	return protocol.Plural(len(signers), "key") + ": " + strings.Join(parts, ", ")
}
