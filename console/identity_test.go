package console

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"recoveryvault/workflows"
)

// TestForgedPostsChangeNothing: a POST without the page's CSRF token, with
// another token, or from another site's page is refused, and the item
// stays as it was.
func TestForgedPostsChangeNothing(t *testing.T) {
	k := startCluster(t, Options{})
	k.protect("vault1", "vm1")
	alice := k.operator("alice")
	del := "/vaults/vault1/items/vm1/delete"
	confirmed := func() url.Values { return url.Values{"confirmName": {"vm1"}, "reason": {"forged"}} }

	code, body, _ := alice.postRaw(del, confirmed())
	assert.Equal(t, http.StatusForbidden, code, "no token")
	assert.Contains(t, body, "CSRF token is missing or wrong")

	form := confirmed()
	form.Set(csrfField, "a-token-of-another-browser-aaaaaaaaaaaaaaaaaaa")
	code, _, _ = alice.postRaw(del, form)
	assert.Equal(t, http.StatusForbidden, code, "a token that is not this browser's")

	// A page of another site posting with the victim's cookies cannot read
	// the token; even with it, the browser's Sec-Fetch-Site gives it away.
	alice.header.Set("Sec-Fetch-Site", "cross-site")
	code, body, _ = alice.post(del, confirmed())
	assert.Equal(t, http.StatusForbidden, code, "cross-site")
	assert.Contains(t, body, "came from another site")
	alice.header.Del("Sec-Fetch-Site")

	stranger := k.operator("")
	code, _, _ = stranger.post(del, confirmed())
	assert.Equal(t, http.StatusUnauthorized, code, "an operator who has not said who they are")

	st := k.status("vault1", "vm1")
	assert.Equal(t, workflows.Protected, st.ProtectionState, "nothing was deleted")
	for _, e := range st.Audit {
		assert.NotEqual(t, workflows.OpDelete, workflows.Operation(e.Operation), "no delete even reached the workflow")
	}

	code, _, _ = alice.post(del, confirmed())
	assert.Equal(t, http.StatusSeeOther, code, "the same form from the console's own page is accepted")
}

// TestDevModeAsksForTheOperatorsNameOnce: the name goes into a cookie and
// every later request is made under it.
func TestDevModeAsksForTheOperatorsNameOnce(t *testing.T) {
	k := startCluster(t, Options{})
	o := k.operator("")
	req, err := http.NewRequest(http.MethodGet, k.url+"/vaults/vault1", nil)
	require.NoError(t, err)
	code, _, loc := o.do(req)
	assert.Equal(t, http.StatusSeeOther, code)
	assert.Equal(t, "/operator?next=%2Fvaults%2Fvault1", loc)

	for _, bad := range []string{"", "   ", "tab\there", string(make([]byte, 200))} {
		code, body, _ := o.post("/operator", url.Values{"name": {bad}, "next": {"/"}})
		assert.Equal(t, http.StatusBadRequest, code, "name %q", bad)
		assert.Contains(t, body, "Give a name of 1 to 128 printable characters")
	}
	// The way back stays on the console.
	code, _, loc = o.post("/operator", url.Values{"name": {" Bob "}, "next": {"//evil.example/"}})
	assert.Equal(t, http.StatusSeeOther, code)
	assert.Equal(t, "/", loc)
	_, body := o.get("/")
	assert.Contains(t, body, "Signed in as <strong>Bob</strong>")
}

// TestProductionTakesTheOperatorOnlyFromTheProxysHeader: without the
// header every request is refused; a cookie cannot stand in for it.
func TestProductionTakesTheOperatorOnlyFromTheProxysHeader(t *testing.T) {
	k := startCluster(t, Options{IdentityHeader: "X-Forwarded-Email"})
	k.protect("vault1", "vm1")
	o := k.operator("")
	for _, path := range []string{"/", "/vaults/vault1", "/vaults/vault1/items/vm1"} {
		code, body := o.get(path)
		assert.Equal(t, http.StatusUnauthorized, code, path)
		assert.Contains(t, body, "X-Forwarded-Email header")
	}
	code, _, _ := o.post("/operator", url.Values{"name": {"mallory"}})
	assert.Equal(t, http.StatusForbidden, code, "no name of one's own choosing")
	code, _, _ = o.post("/vaults/vault1/items/vm1/stop", url.Values{})
	assert.Equal(t, http.StatusUnauthorized, code)
	assert.Equal(t, workflows.Protected, k.status("vault1", "vm1").ProtectionState)

	o.header.Set("X-Forwarded-Email", "carol@example.com")
	code, body := o.get("/vaults/vault1/items/vm1")
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, "Signed in as <strong>carol@example.com</strong>")
	assert.NotContains(t, body, `href="/operator"`, "the proxy's identity cannot be changed here")
	code, _, _ = o.post("/vaults/vault1/items/vm1/stop", url.Values{})
	require.Equal(t, http.StatusSeeOther, code)
	st := k.status("vault1", "vm1")
	assert.Equal(t, workflows.ProtectionStopped, st.ProtectionState)
	assert.Equal(t, "carol@example.com", st.Audit[len(st.Audit)-1].RequestedBy)
}
