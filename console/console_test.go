package console

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/server/temporaltest"

	"recoveryvault/internal/backupworker"
	"recoveryvault/internal/items"
	"recoveryvault/internal/searchattributes"
	"recoveryvault/internal/signing"
	"recoveryvault/internal/signingtest"
	"recoveryvault/internal/storetest"
	"recoveryvault/workflows/item"
	"recoveryvault/workflows/protocol"
	"recoveryvault/workflows/vault"
)

// cluster is a real Temporal server in the test process, the real worker,
// and the console in front of them on 127.0.0.1.
type cluster struct {
	t     *testing.T
	c     client.Client
	store string
	url   string
}

func startCluster(t *testing.T, o Options) *cluster {
	return startClusterOn(t, o, t.TempDir())
}

// startClusterOn is startCluster with the recovery points at store: a
// directory, or s3://BUCKET/PREFIX.
func startClusterOn(t *testing.T, o Options, store string) *cluster {
	ts := temporaltest.NewServer(temporaltest.WithT(t))
	c := ts.GetDefaultClient()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, searchattributes.Ensure(ctx, c, ts.GetDefaultNamespace()))
	w := backupworker.New(c, storetest.At(t, store), nil, protocol.Settings{SoftDeleteRetention: time.Hour, Dev: true})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
	o.Client = c
	h, err := New(o)
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &cluster{t: t, c: c, store: store, url: srv.URL}
}

// protect starts an item as the starter does and waits for its first
// backup.
func (k *cluster) protect(vaultID, itemID string) string {
	k.t.Helper()
	src := filepath.Join(k.t.TempDir(), itemID)
	require.NoError(k.t, os.MkdirAll(filepath.Join(src, "etc"), 0o755))
	require.NoError(k.t, os.WriteFile(filepath.Join(src, "etc", "config"), []byte("item "+itemID+"\n"), 0o644))
	in := item.ItemInput{VaultID: vaultID, ItemID: itemID, SourcePath: src, Policy: protocol.Policy{Frequency: "24h", RetentionDays: 30}}
	require.NoError(k.t, in.Validate())
	_, err := k.c.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
		ID: protocol.WorkflowID(vaultID, itemID), TaskQueue: protocol.TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			protocol.VaultIDAttribute.ValueSet(vaultID), protocol.StateAttribute.ValueSet(string(protocol.Protected))),
	}, protocol.WorkflowType, in)
	require.NoError(k.t, err)
	require.Eventually(k.t, func() bool { return k.status(vaultID, itemID).LastBackupTime != "" }, 30*time.Second, 100*time.Millisecond)
	// The item registers with its vault (and so makes it) just after its
	// first backup: tests that go on to the vault wait for the vault to run
	// and publish its settings.
	require.Eventually(k.t, func() bool {
		_, err := items.VaultSettings(context.Background(), k.c, vaultID)
		return err == nil
	}, 30*time.Second, 100*time.Millisecond, "item %s registered with vault %s", itemID, vaultID)
	return src
}

func (k *cluster) status(vaultID, itemID string) item.Status {
	k.t.Helper()
	var st item.Status
	v, err := k.c.QueryWorkflow(context.Background(), protocol.WorkflowID(vaultID, itemID), "", protocol.QueryStatus)
	if err != nil {
		return st
	}
	require.NoError(k.t, v.Get(&st))
	return st
}

// update runs an item update outside the console, as another operator's
// starter would.
func (k *cluster) update(vaultID, itemID, name string, arg any) {
	k.t.Helper()
	var st item.Status
	require.NoError(k.t, items.Execute(context.Background(), k.c, client.UpdateWorkflowOptions{
		WorkflowID: protocol.WorkflowID(vaultID, itemID), UpdateName: name, Args: []any{arg}}, &st))
}

// visible waits until visibility lists the vault's items in these states.
func (k *cluster) visible(vaultID string, want map[string]protocol.State) {
	k.t.Helper()
	require.Eventually(k.t, func() bool {
		for item, state := range want {
			resp, err := k.c.CountWorkflow(context.Background(), &workflowservice.CountWorkflowExecutionsRequest{
				Query: "WorkflowId = '" + protocol.WorkflowID(vaultID, item) + "' AND BackupItemState = '" + string(state) + "' AND ExecutionStatus != 'ContinuedAsNew'"})
			if err != nil || resp.GetCount() != 1 {
				return false
			}
		}
		return true
	}, 30*time.Second, 200*time.Millisecond)
}

// operator is a browser-like client of the console: it keeps cookies,
// does not follow redirects, and reads the CSRF token from pages.
type operator struct {
	t    *testing.T
	k    *cluster
	http *http.Client
	// header is sent with every request (the proxy's identity header).
	header http.Header
	// lastToken is the CSRF token in the forms of the last page read.
	lastToken string
}

func (k *cluster) operator(name string) *operator {
	jar, err := cookiejar.New(nil)
	require.NoError(k.t, err)
	o := &operator{t: k.t, k: k, header: http.Header{}, http: &http.Client{
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
	if name != "" {
		code, _, loc := o.post("/operator", url.Values{"name": {name}, "next": {"/"}})
		require.Equal(k.t, http.StatusSeeOther, code)
		require.Equal(k.t, "/", loc)
	}
	return o
}

func (o *operator) do(req *http.Request) (int, string, string) {
	o.t.Helper()
	for k, v := range o.header {
		req.Header[k] = v
	}
	resp, err := o.http.Do(req)
	require.NoError(o.t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(o.t, err)
	if m := tokenPattern.FindSubmatch(body); m != nil {
		o.lastToken = string(m[1])
	}
	return resp.StatusCode, string(body), resp.Header.Get("Location")
}

func (o *operator) get(path string) (int, string) {
	o.t.Helper()
	req, err := http.NewRequest(http.MethodGet, o.k.url+path, nil)
	require.NoError(o.t, err)
	code, body, _ := o.do(req)
	return code, body
}

var tokenPattern = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// token is the CSRF token of the operator's pages: the one in the forms of
// the last page it read, or else the browser's CSRF cookie, which any page
// of the console sets.
func (o *operator) token() string {
	o.t.Helper()
	if o.lastToken != "" {
		return o.lastToken
	}
	o.get("/")
	u, err := url.Parse(o.k.url)
	require.NoError(o.t, err)
	for _, ck := range o.http.Jar.Cookies(u) {
		if ck.Name == csrfCookie {
			return ck.Value
		}
	}
	o.t.Fatal("the console set no CSRF cookie")
	return ""
}

// post sends a form with the page's CSRF token.
func (o *operator) post(path string, form url.Values) (int, string, string) {
	o.t.Helper()
	form.Set(csrfField, o.token())
	return o.postRaw(path, form)
}

func (o *operator) postRaw(path string, form url.Values) (int, string, string) {
	o.t.Helper()
	req, err := http.NewRequest(http.MethodPost, o.k.url+path, strings.NewReader(form.Encode()))
	require.NoError(o.t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return o.do(req)
}

// TestConsoleDrivesAnItemThroughItsLifecycle: every page and action of the
// console against a real server and worker; each action is the workflow's
// update, recorded under the operator's name.
func TestConsoleDrivesAnItemThroughItsLifecycle(t *testing.T) {
	k := startCluster(t, Options{})
	k.protect("vault1", "vm1")
	k.protect("vault1", "db1")
	k.protect("vault2", "web1")
	alice := k.operator("alice@example.com")
	item := "/vaults/vault1/items/vm1"

	code, body := alice.get("/")
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, `<a href="/vaults/vault1">vault1</a>`)
	assert.Contains(t, body, `<a href="/vaults/vault2">vault2</a>`)
	assert.Contains(t, body, "Signed in as <strong>alice@example.com</strong>")

	code, body = alice.get(item)
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, "state-Protected")
	for _, action := range []string{"/backupNow", "/stop", "/delete", "/restore"} {
		assert.Contains(t, body, `action="`+item+action+`"`, "Protected offers %s", action)
	}
	for _, action := range []string{"/undelete", "/resume"} {
		assert.NotContains(t, body, `action="`+item+action+`"`, "Protected does not offer %s", action)
	}

	// An address alone says nothing was done.
	_, body = alice.get(item + "?done=undelete&at=2026-12-01T10:00:00Z")
	assert.NotContains(t, body, "Undeleted")
	assert.NotContains(t, body, `class="flash"`)

	code, _, loc := alice.post(item+"/stop", url.Values{})
	require.Equal(t, http.StatusSeeOther, code)
	assertDone(t, loc, item, "stop", "")
	st := k.status("vault1", "vm1")
	assert.Equal(t, protocol.ProtectionStopped, st.ProtectionState)
	last := st.Audit[len(st.Audit)-1]
	assert.Equal(t, "alice@example.com", last.RequestedBy, "requestedBy is the operator")
	_, body = alice.get(loc)
	assert.Contains(t, body, "Protection stopped. Every recovery point is retained.")
	assert.Contains(t, body, "Stop protection with retain data")
	// A page left open while someone else acts says so no more.
	k.update("vault1", "vm1", protocol.UpdateResume, protocol.Request{RequestedBy: "bob"})
	_, body = alice.get(loc)
	assert.NotContains(t, body, "Protection stopped. Every recovery point is retained.", "the stop is no longer what is")
	k.update("vault1", "vm1", protocol.UpdateStop, protocol.Request{RequestedBy: "bob"})

	// Deleting asks for the item's name and a reason, as Azure does.
	code, body, _ = alice.post(item+"/delete", url.Values{"confirmName": {"vm2"}, "reason": {"decommissioned"}})
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Contains(t, body, "Type the item&#39;s name, vm1, to confirm")
	code, _, _ = alice.post(item+"/delete", url.Values{"confirmName": {"vm1"}})
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Equal(t, protocol.ProtectionStopped, k.status("vault1", "vm1").ProtectionState, "nothing was deleted")

	code, _, loc = alice.post(item+"/delete", url.Values{"confirmName": {"vm1"}, "reason": {"decommissioned"}})
	require.Equal(t, http.StatusSeeOther, code)
	st = k.status("vault1", "vm1")
	require.Equal(t, protocol.SoftDeleted, st.ProtectionState)
	last = st.Audit[len(st.Audit)-1]
	assert.Equal(t, "alice@example.com", last.RequestedBy)
	assert.Contains(t, last.Detail, "reason: decommissioned")
	_, body = alice.get(loc)
	assert.Contains(t, body, `class="icon icon-softdeleted"`)
	assert.Contains(t, body, `<time class="countdown" datetime="`+st.DeferredDeleteTimeInUTC+`"`)
	assert.Contains(t, body, `action="`+item+`/undelete"`)
	assert.NotContains(t, body, `action="`+item+`/restore"`, "a soft-deleted item offers no restore")

	// The vault's Backup Items: the red icon and the countdown, and a filter.
	k.visible("vault1", map[string]protocol.State{"vm1": protocol.SoftDeleted, "db1": protocol.Protected})
	code, body = alice.get("/vaults/vault1")
	require.Equal(t, http.StatusOK, code)
	assert.Regexp(t, `data-item="vm1" data-state="SoftDeleted">[\s\S]*?icon-softdeleted[\s\S]*?class="countdown"`, body)
	assert.Regexp(t, `data-item="db1" data-state="Protected">`, body)
	_, body = alice.get("/vaults/vault1?state=SoftDeleted")
	assert.Contains(t, body, `data-item="vm1"`)
	assert.NotContains(t, body, `data-item="db1"`, "the filter shows soft-deleted items only")

	code, _, _ = alice.post(item+"/undelete", url.Values{})
	require.Equal(t, http.StatusSeeOther, code)
	assert.Equal(t, protocol.ProtectionStopped, k.status("vault1", "vm1").ProtectionState)
	code, _, _ = alice.post(item+"/resume", url.Values{})
	require.Equal(t, http.StatusSeeOther, code)
	st = k.status("vault1", "vm1")
	assert.Equal(t, protocol.Protected, st.ProtectionState)
	code, _, _ = alice.post(item+"/backupNow", url.Values{})
	require.Equal(t, http.StatusSeeOther, code)
	assert.Len(t, k.status("vault1", "vm1").RecoveryPoints, len(st.RecoveryPoints)+1)
}

func executeUpdate(k *cluster, workflowID, name string, arg, result any) error {
	return items.Execute(context.Background(), k.c, client.UpdateWorkflowOptions{WorkflowID: workflowID, UpdateName: name, Args: []any{arg}}, result)
}

// sign is req as key k signs it now for operation op at workflowID.
func (k *cluster) sign(key *signingtest.Key, op, workflowID string, req any) json.RawMessage {
	k.t.Helper()
	b, err := signing.Sign(key.Signer, op, workflowID, req, time.Now())
	require.NoError(k.t, err)
	return b
}

// signedVault makes vault vaultID require signatures by the keys given, with
// multi-user authorization between their holders.
func (k *cluster) signedVault(vaultID string, keys ...*signingtest.Key) {
	k.t.Helper()
	wf := protocol.VaultWorkflowID(vaultID)
	var vs vault.VaultStatus
	require.NoError(k.t, executeUpdate(k, wf, vault.UpdateSetAllowedSigners,
		protocol.SetAllowedSignersRequest{AllowedSigners: signingtest.AllowedSigners(keys...), RequestedBy: keys[0].Principal}, &vs))
	var names []string
	for _, key := range keys {
		names = append(names, key.Principal)
	}
	require.NoError(k.t, executeUpdate(k, wf, protocol.UpdateEnableMua,
		k.sign(keys[0], protocol.UpdateEnableMua, wf, protocol.EnableMuaRequest{Approvers: names, RequestedBy: keys[0].Principal}), &vs))
}

// assertDone checks where an action sends the operator: back to path,
// naming the action and the time of the audit line it wrote.
func assertDone(t *testing.T, loc, path, done, request string) {
	t.Helper()
	u, err := url.Parse(loc)
	require.NoError(t, err)
	assert.Equal(t, path, u.Path)
	q := u.Query()
	assert.Equal(t, done, q.Get("done"))
	assert.Equal(t, request, q.Get("request"))
	_, err = time.Parse(time.RFC3339Nano, q.Get("at"))
	assert.NoError(t, err, "the time of the action's audit line")
}
