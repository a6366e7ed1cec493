package vault_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"

	"recoveryvault/activities"
	"recoveryvault/internal/signing"
	"recoveryvault/internal/signingtest"
	"recoveryvault/workflows/protocol"
	. "recoveryvault/workflows/vault"
)

// signed is req as key k signs it now for operation op at workflowID.
func (s *VaultSuite) signed(k *signingtest.Key, op, workflowID string, req any) json.RawMessage {
	b, err := signing.Sign(k.Signer, op, workflowID, req, s.env.Now())
	s.Require().NoError(err)
	return b
}

// auditSigners are the audit's operation/requestedBy/outcome/signer lines.
func (s *VaultSuite) auditSigners() []string {
	var lines []string
	for _, e := range s.status().Audit {
		lines = append(lines, e.Operation+"/"+e.RequestedBy+"/"+e.Outcome+"/"+e.Signer)
	}
	return lines
}

// TestApprovalsInAnothersNameAreRefusedOnASignedVault is the attacker's
// test: with full access to the namespace but not bob's private key, no
// approval in bob's name counts, and bob's own counts once.
func (s *VaultSuite) TestApprovalsInAnothersNameAreRefusedOnASignedVault() {
	alice, bob, mallory := signingtest.New(s.T(), "alice"), signingtest.New(s.T(), "bob"), signingtest.New(s.T(), "mallory")
	vaultWF := protocol.VaultWorkflowID("vault1")
	var errSigners, errMua, errUnsigned, errPending error
	s.at(time.Minute, func() {
		s.answer(UpdateSetAllowedSigners, protocol.SetAllowedSignersRequest{AllowedSigners: signingtest.AllowedSigners(alice, bob), RequestedBy: "alice"}, nil, &errSigners)
	})
	s.at(2*time.Minute, func() {
		s.Require().NoError(errSigners, "the first signers need no signature on a vault without multi-user authorization")
		s.True(s.status().SignaturesRequired)
		s.Len(s.status().AllowedSigners, 2)
		s.answer(protocol.UpdateEnableMua, s.signed(alice, protocol.UpdateEnableMua, vaultWF, protocol.EnableMuaRequest{Approvers: []string{"alice", "bob"}, RequestedBy: "alice"}), nil, &errMua)
		s.answer(protocol.UpdateSetSoftDelete, protocol.SetSoftDeleteRequest{State: protocol.SoftDeleteDisabled, RequestedBy: "alice"}, nil, &errUnsigned)
	})
	s.at(3*time.Minute, func() {
		s.Require().NoError(errMua)
		s.ErrorContains(errUnsigned, "it is not signed, and this vault requires signatures")
		s.answer(protocol.UpdateSetSoftDelete, s.signed(alice, protocol.UpdateSetSoftDelete, vaultWF, protocol.SetSoftDeleteRequest{State: protocol.SoftDeleteDisabled, RequestedBy: "alice"}), nil, &errPending)
	})
	bobsApproval := json.RawMessage(nil)
	forged := map[string]*error{}
	s.at(4*time.Minute, func() {
		s.Require().NoError(errPending)
		s.Equal(protocol.RequestPending, requestByID(s.status(), "r-1").State)
		for name, payload := range map[string]any{
			"unsigned":                               protocol.DecisionRequest{RequestID: "r-1", RequestedBy: "bob"},
			"alice's key as bob":                     s.signed(alice, protocol.UpdateApprove, vaultWF, protocol.DecisionRequest{RequestID: "r-1", RequestedBy: "bob"}),
			"mallory's key as bob":                   s.signed(mallory, protocol.UpdateApprove, vaultWF, protocol.DecisionRequest{RequestID: "r-1", RequestedBy: "bob"}),
			"bob's signed reject sent as an approve": s.signed(bob, protocol.UpdateReject, vaultWF, protocol.DecisionRequest{RequestID: "r-1", RequestedBy: "bob"}),
			"bob's approval at another vault":        s.signed(bob, protocol.UpdateApprove, protocol.VaultWorkflowID("vault2"), protocol.DecisionRequest{RequestID: "r-1", RequestedBy: "bob"}),
		} {
			forged[name] = new(error)
			s.answer(protocol.UpdateApprove, payload, nil, forged[name])
		}
	})
	var errApproved, errAgain error
	s.at(5*time.Minute, func() {
		for name, err := range forged {
			s.Require().Error(*err, name)
			s.Contains((*err).Error(), "approve as bob refused", name)
		}
		st := s.status()
		s.Equal(protocol.RequestPending, requestByID(st, "r-1").State, "no forged approval counts")
		s.Equal(protocol.SoftDeleteEnabled, st.SoftDelete.State)
		bobsApproval = s.signed(bob, protocol.UpdateApprove, vaultWF, protocol.DecisionRequest{RequestID: "r-1", RequestedBy: "bob"})
		s.answer(protocol.UpdateApprove, bobsApproval, nil, &errApproved)
	})
	s.at(6*time.Minute, func() {
		s.Require().NoError(errApproved)
		s.Equal(protocol.SoftDeleteDisabled, s.status().SoftDelete.State)
		s.answer(protocol.UpdateApprove, bobsApproval, nil, &errAgain)
	})
	s.at(7*time.Minute, func() {
		s.ErrorContains(errAgain, "nonce has been used already", "the same approval counts once")
		lines := s.auditSigners()
		aliceKey, bobKey := "alice ("+alice.Fingerprint()+")", "bob ("+bob.Fingerprint()+")"
		s.Equal("setAllowedSigners/alice/accepted/unsigned", lines[0])
		s.Equal("enableMua/alice/accepted/"+aliceKey, lines[1])
		s.Equal("setSoftDelete/alice/rejected/signature not verified", lines[2])
		s.Equal("setSoftDelete/alice/pending approval/"+aliceKey, lines[3])
		s.Equal("approve/bob/accepted/"+bobKey, lines[len(lines)-3])
		s.Equal("setSoftDelete/alice/accepted/"+aliceKey, lines[len(lines)-2], "carried out as the requester's signed operation")
		s.Equal("approve/bob/rejected/signature not verified", lines[len(lines)-1])
		rejected := 0
		for _, a := range s.alerts {
			if a.Kind == protocol.AlertCriticalRejected {
				rejected++
				s.Equal("signature not verified", a.Signer)
			}
		}
		s.Equal(len(forged)+2, rejected, "every refused signature is alerted")
		s.env.CancelWorkflow()
	})
	s.env.ExecuteWorkflow(Vault, VaultInput{VaultID: "vault1"})
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()), "the vault ran to the last check")
}

// TestReplacingOrRemovingSignersMustBeSigned: once set, the signers are
// changed only by a listed key; removed, the vault takes unsigned requests.
func (s *VaultSuite) TestReplacingOrRemovingSignersMustBeSigned() {
	alice, bob := signingtest.New(s.T(), "alice"), signingtest.New(s.T(), "bob")
	vaultWF := protocol.VaultWorkflowID("vault1")
	var errFirst, errUnsigned, errBobNotListed, errReplace, errRemove, errBad, errAfter error
	s.at(time.Minute, func() {
		s.answer(UpdateSetAllowedSigners, protocol.SetAllowedSignersRequest{AllowedSigners: alice.Line(), RequestedBy: "alice"}, nil, &errFirst)
		s.answer(UpdateSetAllowedSigners, protocol.SetAllowedSignersRequest{AllowedSigners: "alice ssh-ed25519 AAAAnotakey", RequestedBy: "alice"}, nil, &errBad)
	})
	s.at(2*time.Minute, func() {
		s.Require().NoError(errFirst)
		s.ErrorContains(errBad, "allowed signers line 1: no public key")
		both := signingtest.AllowedSigners(alice, bob)
		s.answer(UpdateSetAllowedSigners, protocol.SetAllowedSignersRequest{AllowedSigners: both, RequestedBy: "alice"}, nil, &errUnsigned)
		s.answer(UpdateSetAllowedSigners, s.signed(bob, UpdateSetAllowedSigners, vaultWF, protocol.SetAllowedSignersRequest{AllowedSigners: both, RequestedBy: "bob"}), nil, &errBobNotListed)
		s.answer(UpdateSetAllowedSigners, s.signed(alice, UpdateSetAllowedSigners, vaultWF, protocol.SetAllowedSignersRequest{AllowedSigners: both, RequestedBy: "alice"}), nil, &errReplace)
	})
	s.at(3*time.Minute, func() {
		s.ErrorContains(errUnsigned, "it is not signed")
		s.ErrorContains(errBobNotListed, "do not list for bob")
		s.Require().NoError(errReplace)
		s.Len(s.status().AllowedSigners, 2)
		s.answer(UpdateSetAllowedSigners, s.signed(bob, UpdateSetAllowedSigners, vaultWF, protocol.SetAllowedSignersRequest{RequestedBy: "bob", Reason: "moving to another scheme"}), nil, &errRemove)
	})
	s.at(4*time.Minute, func() {
		s.Require().NoError(errRemove)
		st := s.status()
		s.False(st.SignaturesRequired)
		s.Empty(st.AllowedSigners)
		s.answer(protocol.UpdateDeleteVault, protocol.Request{RequestedBy: "alice"}, nil, &errAfter)
	})
	s.at(5*time.Minute, func() {
		s.Require().NoError(errAfter, "without signers the vault takes unsigned requests again")
		lines := s.auditSigners()
		s.Equal("deleteVault/alice/accepted/unsigned", lines[len(lines)-1])
	})
	s.env.ExecuteWorkflow(Vault, VaultInput{VaultID: "vault1"})
	s.NoError(s.env.GetWorkflowError())
}

// TestItemDeletesOnASignedVault: an item's delete carries the person's
// signed payload; the vault checks it for that item's workflow, and under
// multi-user authorization hands the item the approvers' keys, then the
// approval as its approver signed it.
func (s *VaultSuite) TestItemDeletesOnASignedVault() {
	alice, bob := signingtest.New(s.T(), "alice"), signingtest.New(s.T(), "bob")
	var a *activities.Activities
	var sent []protocol.MessageInput
	s.env.OnActivity(a.Signal, mock.Anything, mock.Anything).Return(func(_ ctxT, in protocol.MessageInput) error {
		sent = append(sent, in)
		return nil
	})
	vm1, vm2 := protocol.WorkflowID("vault1", "vm1"), protocol.WorkflowID("vault1", "vm2")
	var signed, unsigned, otherItem, pending protocol.VaultAnswer
	var errSigners, errSigned, errUnsigned, errOtherItem, errMuaNoKey, errMua, errPending, errApprove error
	s.at(30*time.Second, func() {
		s.answer(UpdateSetAllowedSigners, protocol.SetAllowedSignersRequest{AllowedSigners: signingtest.AllowedSigners(alice, bob), RequestedBy: "alice"}, nil, &errSigners)
	})
	s.at(time.Minute, func() {
		s.Require().NoError(errSigners)
		s.itemDelete("unsigned", protocol.ItemDeleteRequest{ItemID: "vm1", RequestedBy: "alice",
			Input: json.RawMessage(`{"requestedBy":"alice"}`)}, &unsigned, &errUnsigned)
		s.itemDelete("other item", protocol.ItemDeleteRequest{ItemID: "vm1", RequestedBy: "alice",
			Input: s.signed(alice, string(protocol.OpDelete), vm2, protocol.Request{RequestedBy: "alice"})}, &otherItem, &errOtherItem)
		s.itemDelete("signed", protocol.ItemDeleteRequest{ItemID: "vm1", RequestedBy: "alice",
			Input: s.signed(alice, string(protocol.OpDelete), vm1, protocol.Request{RequestedBy: "alice"})}, &signed, &errSigned)
	})
	s.at(2*time.Minute, func() {
		s.ErrorContains(errUnsigned, "it is not signed")
		s.ErrorContains(errOtherItem, "does not match this request")
		s.Require().NoError(errSigned)
		aliceKey := "alice (" + alice.Fingerprint() + ")"
		s.Equal(aliceKey, signed.Signer)
		s.Require().NotNil(signed.Alert)
		s.Equal(aliceKey, signed.Alert.Signer, "the soft-delete alert names the key")
		s.answer(protocol.UpdateEnableMua, s.signed(alice, protocol.UpdateEnableMua, protocol.VaultWorkflowID("vault1"), protocol.EnableMuaRequest{Approvers: []string{"alice", "bob", "carol"}, RequestedBy: "alice"}), nil, &errMuaNoKey)
		s.answer(protocol.UpdateEnableMua, s.signed(alice, protocol.UpdateEnableMua, protocol.VaultWorkflowID("vault1"), protocol.EnableMuaRequest{Approvers: []string{"alice", "bob"}, RequestedBy: "alice"}), nil, &errMua)
	})
	s.at(3*time.Minute, func() {
		s.ErrorContains(errMuaNoKey, "approver carol has no key")
		s.Require().NoError(errMua)
		s.itemDelete("pending", protocol.ItemDeleteRequest{ItemID: "vm2", RequestedBy: "alice",
			Input: s.signed(alice, string(protocol.OpDelete), vm2, protocol.Request{RequestedBy: "alice"})}, &pending, &errPending)
	})
	var approval json.RawMessage
	s.at(4*time.Minute, func() {
		s.Require().NoError(errPending)
		s.Require().NotNil(pending.Pending)
		s.Equal([]string{"bob"}, pending.Approvers)
		s.Equal(bob.Line(), pending.ApproverKeys, "the item gets the keys of those who may approve, and no others")
		approval = s.signed(bob, protocol.UpdateApprove, protocol.VaultWorkflowID("vault1"), protocol.DecisionRequest{RequestID: pending.Pending.RequestID, RequestedBy: "bob"})
		s.answer(protocol.UpdateApprove, approval, nil, &errApprove)
	})
	s.at(5*time.Minute, func() {
		s.Require().NoError(errApprove)
		s.Require().Len(sent, 1)
		var told protocol.DeleteApproval
		s.Require().NoError(json.Unmarshal(sent[0].Payload, &told))
		s.JSONEq(string(approval), string(told.Approval), "the item gets the approval exactly as bob signed it")
		s.env.CancelWorkflow()
	})
	s.env.ExecuteWorkflow(Vault, VaultInput{VaultID: "vault1"})
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()), "the vault ran to the last check")
}

// TestFirstSignersUnderMuaWaitForApproval: setting the first signers is
// critical under multi-user authorization.
func (s *VaultSuite) TestFirstSignersUnderMuaWaitForApproval() {
	alice, bob := signingtest.New(s.T(), "alice"), signingtest.New(s.T(), "bob")
	var pending VaultStatus
	var errPending, errOnlyAlice, errApprove error
	s.at(time.Minute, func() {
		s.enableMua("24h")
		s.answer(UpdateSetAllowedSigners, protocol.SetAllowedSignersRequest{AllowedSigners: alice.Line(), RequestedBy: "alice"}, nil, &errOnlyAlice)
		s.answer(UpdateSetAllowedSigners, protocol.SetAllowedSignersRequest{AllowedSigners: signingtest.AllowedSigners(alice, bob), RequestedBy: "alice"}, &pending, &errPending)
	})
	s.at(2*time.Minute, func() {
		s.ErrorContains(errOnlyAlice, "approver bob has no key", "approvers without keys could never approve")
		s.Require().NoError(errPending)
		s.Require().NotNil(pending.Request)
		s.False(s.status().SignaturesRequired, "nothing changes before approval")
		s.answer(protocol.UpdateApprove, protocol.DecisionRequest{RequestID: pending.Request.RequestID, RequestedBy: "bob"}, nil, &errApprove)
	})
	s.at(3*time.Minute, func() {
		s.Require().NoError(errApprove, "the vault did not require signatures when bob approved")
		s.True(s.status().SignaturesRequired)
		s.env.CancelWorkflow()
	})
	s.env.ExecuteWorkflow(Vault, VaultInput{VaultID: "vault1"})
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()), "the vault ran to the last check")
}

// TestOneKeyCannotStandForTwoApprovers: a key listed for two approvers
// would let its holder request as one and approve as the other.
func (s *VaultSuite) TestOneKeyCannotStandForTwoApprovers() {
	alice := signingtest.New(s.T(), "alice")
	shared := alice.Line() + "\nbob " + strings.TrimPrefix(alice.Line(), "alice ")
	var errSigners, errMua error
	s.at(time.Minute, func() {
		s.answer(UpdateSetAllowedSigners, protocol.SetAllowedSignersRequest{AllowedSigners: shared, RequestedBy: "alice"}, nil, &errSigners)
	})
	s.at(2*time.Minute, func() {
		s.Require().NoError(errSigners)
		s.answer(protocol.UpdateEnableMua, s.signed(alice, protocol.UpdateEnableMua, protocol.VaultWorkflowID("vault1"), protocol.EnableMuaRequest{Approvers: []string{"alice", "bob"}, RequestedBy: "alice"}), nil, &errMua)
	})
	s.at(3*time.Minute, func() {
		s.ErrorContains(errMua, "is listed for approvers alice and bob: each approver needs a key of their own")
		s.False(s.status().MultiUserAuthorization.Enabled)
		s.env.CancelWorkflow()
	})
	s.env.ExecuteWorkflow(Vault, VaultInput{VaultID: "vault1"})
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()), "the vault ran to the last check")
}

// TestAHeldSignedDeleteGoesThroughWhenSentAgain: a delete the guard holds
// took no effect, so its item may send the same signed request again once
// the hold is cleared; its nonce does not make it a replay.
func (s *VaultSuite) TestAHeldSignedDeleteGoesThroughWhenSentAgain() {
	alice := signingtest.New(s.T(), "alice")
	var errSigners, errGuard, errHeld, errClear, errAgain error
	var held, again protocol.VaultAnswer
	var input json.RawMessage
	s.at(30*time.Second, func() {
		s.answer(UpdateSetAllowedSigners, protocol.SetAllowedSignersRequest{AllowedSigners: alice.Line(), RequestedBy: "alice"}, nil, &errSigners)
		s.answer(UpdateSetMassDeleteGuard, protocol.SetMassDeleteGuardRequest{Threshold: 1, RequestedBy: "alice"}, nil, &errGuard)
	})
	s.at(time.Minute, func() {
		s.Require().NoError(errSigners)
		s.Require().NoError(errGuard)
		var first protocol.VaultAnswer
		var errFirst error
		s.itemDelete("first", protocol.ItemDeleteRequest{ItemID: "vm1", RequestedBy: "alice",
			Input: s.signed(alice, string(protocol.OpDelete), protocol.WorkflowID("vault1", "vm1"), protocol.Request{RequestedBy: "alice"})}, &first, &errFirst)
		input = s.signed(alice, string(protocol.OpDelete), protocol.WorkflowID("vault1", "vm2"), protocol.Request{RequestedBy: "alice"})
		s.itemDelete("held", protocol.ItemDeleteRequest{ItemID: "vm2", RequestedBy: "alice", Input: input}, &held, &errHeld)
	})
	s.at(2*time.Minute, func() {
		s.Require().NoError(errHeld)
		s.Contains(held.Held, "holds deletes")
		s.answer(UpdateClearMassDeleteHold, s.signed(alice, UpdateClearMassDeleteHold, protocol.VaultWorkflowID("vault1"), protocol.Request{RequestedBy: "alice"}), nil, &errClear)
	})
	s.at(3*time.Minute, func() {
		s.Require().NoError(errClear)
		s.itemDelete("again", protocol.ItemDeleteRequest{ItemID: "vm2", RequestedBy: "alice", Input: input}, &again, &errAgain)
	})
	s.at(4*time.Minute, func() {
		s.Require().NoError(errAgain, "the same signed delete, sent again by its item")
		s.Empty(again.Held)
		s.Equal(14*day, again.Window)
		s.env.CancelWorkflow()
	})
	s.env.ExecuteWorkflow(Vault, VaultInput{VaultID: "vault1"})
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()), "the vault ran to the last check")
}

// TestSignaturesHoldThroughABurstAndItsRelease: on a vault that requires
// signatures, a burst of signed deletes meets the guard; a forged and a
// replayed delete in the burst are refused; the held ones go through when
// their items ask again after the clear, within 10 minutes of signing, and
// one asked later is refused as stale, whatever time its message claims.
func (s *VaultSuite) TestSignaturesHoldThroughABurstAndItsRelease() {
	alice, mallory := signingtest.New(s.T(), "alice"), signingtest.New(s.T(), "mallory")
	s.holding = 100
	const burst = 30
	inputs := make([]json.RawMessage, burst)
	answers := make([]protocol.VaultAnswer, burst)
	errs := make([]error, burst)
	var received time.Time
	var errSigners, errReplay, errForged, errClear error
	s.at(time.Minute, func() {
		s.answer(UpdateSetAllowedSigners, protocol.SetAllowedSignersRequest{AllowedSigners: signingtest.AllowedSigners(alice), RequestedBy: "alice"}, nil, &errSigners)
	})
	s.at(2*time.Minute, func() {
		s.Require().NoError(errSigners)
		received = s.env.Now()
		for i := range burst {
			item := protocol.WorkflowID("vault1", fmt.Sprintf("vm%d", i))
			inputs[i] = s.signed(alice, string(protocol.OpDelete), item, protocol.Request{RequestedBy: "alice"})
			s.itemDelete(fmt.Sprintf("d-%d", i), protocol.ItemDeleteRequest{ItemID: fmt.Sprintf("vm%d", i), RequestedBy: "alice", Input: inputs[i], ReceivedAt: received},
				&answers[i], &errs[i])
		}
		s.itemDelete("replay", protocol.ItemDeleteRequest{ItemID: "vm0", RequestedBy: "alice", Input: inputs[0], ReceivedAt: received}, nil, &errReplay)
		s.itemDelete("forged", protocol.ItemDeleteRequest{ItemID: "vm99", RequestedBy: "alice",
			Input: s.signed(mallory, string(protocol.OpDelete), protocol.WorkflowID("vault1", "vm99"), protocol.Request{RequestedBy: "alice"}), ReceivedAt: received}, nil, &errForged)
	})
	held := 0
	s.at(3*time.Minute, func() {
		for i := range burst {
			s.Require().NoError(errs[i], i)
			if answers[i].Held != "" {
				held++
			}
		}
		s.Equal(burst-10, held, "10 through (the larger of 10 and 5% of 100 items), the rest held")
		s.ErrorContains(errReplay, "its nonce has been used already")
		s.ErrorContains(errForged, "which the allowed signers do not list for alice")
	})
	// Four minutes after the burst the hold is cleared and each held item
	// but the last asks again with the request it received.
	var late protocol.VaultAnswer
	var errLate, errStaleReplay error
	s.at(6*time.Minute, func() {
		s.answer(UpdateClearMassDeleteHold, s.signed(alice, UpdateClearMassDeleteHold, protocol.VaultWorkflowID("vault1"), protocol.Request{RequestedBy: "alice"}), nil, &errClear)
	})
	last := burst - 1
	s.at(7*time.Minute, func() {
		s.Require().NoError(errClear)
		s.Require().NotEmpty(answers[last].Held, "the last delete of the burst was held")
		for i := range last {
			if answers[i].Held != "" {
				s.itemDelete(fmt.Sprintf("again-%d", i), protocol.ItemDeleteRequest{ItemID: fmt.Sprintf("vm%d", i), RequestedBy: "alice", Input: inputs[i], ReceivedAt: received},
					&answers[i], &errs[i])
			}
		}
	})
	// The last one asks again 13 minutes after its signing; a replay of the
	// first claims to have been received at the burst.
	s.at(15*time.Minute, func() {
		for i := range last {
			s.Require().NoError(errs[i], i)
			s.Empty(answers[i].Held, "delete %d is through", i)
			s.Equal("alice ("+alice.Fingerprint()+")", answers[i].Signer)
		}
		s.itemDelete("late", protocol.ItemDeleteRequest{ItemID: fmt.Sprintf("vm%d", last), RequestedBy: "alice", Input: inputs[last], ReceivedAt: received}, &late, &errLate)
		s.itemDelete("stale replay", protocol.ItemDeleteRequest{ItemID: "vm0", RequestedBy: "alice", Input: inputs[0], ReceivedAt: received}, nil, &errStaleReplay)
	})
	s.at(16*time.Minute, func() {
		s.ErrorContains(errLate, "more than 10m0s from the workflow's clock", "signed too long ago: signed again, it goes through")
		s.ErrorContains(errStaleReplay, "more than 10m0s from the workflow's clock", "a claimed time does not make a captured signature fresh")
		s.env.CancelWorkflow()
	})
	s.env.ExecuteWorkflow(Vault, VaultInput{VaultID: "vault1"})
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()), "the vault ran to the last check")
}

// TestASignedDeleteWhoseItemCannotBeCheckedIsNoReplayWhenAskedAgain: under
// multi-user authorization a vault that could not check the item answered
// that it could not, and took nothing of the request: the item's same
// signed delete, asked again, opens its request.
func (s *VaultSuite) TestASignedDeleteWhoseItemCannotBeCheckedIsNoReplayWhenAskedAgain() {
	alice, bob := signingtest.New(s.T(), "alice"), signingtest.New(s.T(), "bob")
	var pending VaultStatus
	var errSigners, errApprove, errFirst, errAgain error
	var first, again protocol.VaultAnswer
	var input json.RawMessage
	s.at(time.Minute, func() {
		s.enableMua("24h")
		s.answer(UpdateSetAllowedSigners, protocol.SetAllowedSignersRequest{AllowedSigners: signingtest.AllowedSigners(alice, bob), RequestedBy: "alice"}, &pending, &errSigners)
	})
	s.at(2*time.Minute, func() {
		s.Require().NoError(errSigners)
		s.answer(protocol.UpdateApprove, protocol.DecisionRequest{RequestID: pending.Request.RequestID, RequestedBy: "bob"}, nil, &errApprove)
	})
	s.at(3*time.Minute, func() {
		s.Require().NoError(errApprove)
		s.Require().True(s.status().SignaturesRequired)
		s.flakyUntil = s.env.Now().Add(2 * time.Minute)
		input = s.signed(alice, string(protocol.OpDelete), protocol.WorkflowID("vault1", "flaky1"), protocol.Request{RequestedBy: "alice"})
		s.itemDelete("first", protocol.ItemDeleteRequest{ItemID: "flaky1", RequestedBy: "alice", Input: input}, &first, &errFirst)
	})
	s.at(6*time.Minute, func() {
		s.Require().NoError(errFirst)
		s.Contains(first.Unavailable, "could not check that item flaky1")
		s.itemDelete("again", protocol.ItemDeleteRequest{ItemID: "flaky1", RequestedBy: "alice", Input: input}, &again, &errAgain)
	})
	s.at(7*time.Minute, func() {
		s.Require().NoError(errAgain, "the same signed delete, asked again by its item, is no replay")
		s.Require().NotNil(again.Pending)
		s.Equal(protocol.RequestPending, again.Pending.State)
		s.env.CancelWorkflow()
	})
	s.env.ExecuteWorkflow(Vault, VaultInput{VaultID: "vault1"})
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()), "the vault ran to the last check")
}

// TestARemovedKeyNoLongerStandsBehindARequestOrAnApproval: once bob's key
// is replaced, the request it signed is closed, and the delete it approved
// is no longer confirmed to its item.
func (s *VaultSuite) TestARemovedKeyNoLongerStandsBehindARequestOrAnApproval() {
	alice, bob, bob2 := signingtest.New(s.T(), "alice"), signingtest.New(s.T(), "bob"), signingtest.New(s.T(), "bob")
	var a *activities.Activities
	s.env.OnActivity(a.Signal, mock.Anything, mock.Anything).Return(nil)
	vaultWF, vm2 := protocol.VaultWorkflowID("vault1"), protocol.WorkflowID("vault1", "vm2")
	var errSigners, errMua, errDelete, errBobs, errApprove, errReplace, errApproveReplace, errConfirm error
	var pending, confirmed protocol.VaultAnswer
	var replace VaultStatus
	s.at(30*time.Second, func() {
		s.answer(UpdateSetAllowedSigners, protocol.SetAllowedSignersRequest{AllowedSigners: signingtest.AllowedSigners(alice, bob), RequestedBy: "alice"}, nil, &errSigners)
	})
	s.at(time.Minute, func() {
		s.Require().NoError(errSigners)
		s.answer(protocol.UpdateEnableMua, s.signed(alice, protocol.UpdateEnableMua, vaultWF, protocol.EnableMuaRequest{Approvers: []string{"alice", "bob"}, RequestedBy: "alice"}), nil, &errMua)
	})
	s.at(2*time.Minute, func() {
		s.Require().NoError(errMua)
		s.itemDelete("delete", protocol.ItemDeleteRequest{ItemID: "vm2", RequestedBy: "alice",
			Input: s.signed(alice, string(protocol.OpDelete), vm2, protocol.Request{RequestedBy: "alice"})}, &pending, &errDelete)
		s.answer(protocol.UpdateSetSoftDelete, s.signed(bob, protocol.UpdateSetSoftDelete, vaultWF, protocol.SetSoftDeleteRequest{State: protocol.SoftDeleteDisabled, RequestedBy: "bob"}), nil, &errBobs)
	})
	s.at(3*time.Minute, func() {
		s.Require().NoError(errDelete)
		s.Require().NoError(errBobs)
		s.answer(protocol.UpdateApprove, s.signed(bob, protocol.UpdateApprove, vaultWF, protocol.DecisionRequest{RequestID: pending.Pending.RequestID, RequestedBy: "bob"}), nil, &errApprove)
	})
	s.at(4*time.Minute, func() {
		s.Require().NoError(errApprove)
		s.answer(UpdateSetAllowedSigners, s.signed(alice, UpdateSetAllowedSigners, vaultWF,
			protocol.SetAllowedSignersRequest{AllowedSigners: signingtest.AllowedSigners(alice, bob2), RequestedBy: "alice"}), &replace, &errReplace)
	})
	s.at(5*time.Minute, func() {
		s.Require().NoError(errReplace)
		id := replace.Requests[len(replace.Requests)-1].RequestID
		s.answer(protocol.UpdateApprove, s.signed(bob, protocol.UpdateApprove, vaultWF, protocol.DecisionRequest{RequestID: id, RequestedBy: "bob"}), nil, &errApproveReplace)
	})
	s.at(6*time.Minute, func() {
		s.Require().NoError(errApproveReplace)
		st := s.status()
		s.Contains(st.AllowedSigners[1].Fingerprint, bob2.Fingerprint()[:12], "bob's key is replaced")
		var bobs protocol.MuaRequest
		for _, r := range st.Requests {
			if r.RequestedBy == "bob" {
				bobs = r
			}
		}
		s.Equal(protocol.RequestRejected, bobs.State, "the request bob's old key signed is closed")
		s.Contains(bobs.Detail, "that signed request "+bobs.RequestID+" is no longer listed for bob")
		s.itemDelete("confirm", protocol.ItemDeleteRequest{ItemID: "vm2", RequestedBy: "alice", RequestID: pending.Pending.RequestID}, &confirmed, &errConfirm)
	})
	s.at(7*time.Minute, func() {
		s.ErrorContains(errConfirm, "which vault vault1 no longer lists for bob", "the approval by the removed key no longer counts")
		s.env.CancelWorkflow()
	})
	s.env.ExecuteWorkflow(Vault, VaultInput{VaultID: "vault1"})
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()), "the vault ran to the last check")
}

// TestASignedDeleteSentByAnotherTakesNotTheItemsNonce: someone reads an
// item's signed delete from its history and sends it to the vault first,
// as an update of their own: refused, and the item's own ask of the same
// delete then goes through.
func (s *VaultSuite) TestASignedDeleteSentByAnotherTakesNotTheItemsNonce() {
	alice := signingtest.New(s.T(), "alice")
	var errSigners, errForged, errReal error
	var forged, real protocol.VaultAnswer
	s.at(30*time.Second, func() {
		s.answer(UpdateSetAllowedSigners, protocol.SetAllowedSignersRequest{AllowedSigners: signingtest.AllowedSigners(alice), RequestedBy: "alice"}, nil, &errSigners)
	})
	s.at(time.Minute, func() {
		s.Require().NoError(errSigners)
		input := s.signed(alice, string(protocol.OpDelete), protocol.WorkflowID("vault1", "vm1"), protocol.Request{RequestedBy: "alice"})
		req := protocol.ItemDeleteRequest{ItemID: "vm1", RequestedBy: "alice", Input: input}
		s.sendItemDelete(itemRun+"/forged-activity", req, &forged, &errForged)
		s.itemDelete("real", req, &real, &errReal)
	})
	s.at(2*time.Minute, func() {
		s.ErrorContains(errForged, "the delete of item vm1 did not come from the item")
		s.Require().NoError(errReal, "the nonce is still the item's")
		s.Equal("alice ("+alice.Fingerprint()+")", real.Signer)
		s.env.CancelWorkflow()
	})
	s.env.ExecuteWorkflow(Vault, VaultInput{VaultID: "vault1"})
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()), "the vault ran to the last check")
}
