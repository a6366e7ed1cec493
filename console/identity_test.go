package console

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"recoveryvault/workflows/protocol"
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

	// Reading needs no name; acting does, and is sent to say it first.
	stranger := k.operator("")
	code, _ = stranger.get("/vaults/vault1/items/vm1")
	assert.Equal(t, http.StatusOK, code, "a page is readable without a name")
	code, _, loc := stranger.post(del, confirmed())
	assert.Equal(t, http.StatusSeeOther, code, "an operator who has not said who they are")
	assert.Equal(t, "/operator?act=1&next=%2Fvaults%2Fvault1%2Fitems%2Fvm1", loc)
	_, body, _ = stranger.do(mustGet(t, k.url+loc))
	assert.Contains(t, body, "Say who you are before you act")
	assert.Contains(t, body, `name="next" value="/vaults/vault1/items/vm1"`)

	st := k.status("vault1", "vm1")
	assert.Equal(t, protocol.Protected, st.ProtectionState, "nothing was deleted")
	for _, e := range st.Audit {
		assert.NotEqual(t, protocol.OpDelete, protocol.Operation(e.Operation), "no delete even reached the workflow")
	}

	code, _, _ = alice.post(del, confirmed())
	assert.Equal(t, http.StatusSeeOther, code, "the same form from the console's own page is accepted")
}

// TestDevModeAsksForTheOperatorsNameOnce: the name goes into a cookie and
// every later request is made under it.
func TestDevModeAsksForTheOperatorsNameOnce(t *testing.T) {
	k := startCluster(t, Options{})
	o := k.operator("")
	// A first visit reads the console without a name, and an unknown vault
	// is a page that says so, not a detour through the name page.
	code, body, _ := o.do(mustGet(t, k.url+"/"))
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, "Reading as a guest")
	assert.Contains(t, body, `href="/operator?next=%2f"`)
	code, body, _ = o.do(mustGet(t, k.url+"/vaults/vault1"))
	assert.Equal(t, http.StatusNotFound, code)
	assert.Contains(t, body, "There is no vault vault1.")
	assert.Contains(t, body, `<a href="/">Back to the vaults</a>`)

	for _, bad := range []string{"", "   ", "tab\there", strings.Repeat("a", 129), "system", "Scheduler", "anonymous"} {
		code, body, _ := o.post("/operator", url.Values{"name": {bad}, "next": {"/"}})
		assert.Equal(t, http.StatusBadRequest, code, "name %q", bad)
		assert.Contains(t, body, "Give a name of 1 to 128 printable characters")
	}
	code, _, _ = o.postRaw("/operator", url.Values{"name": {"mallory"}, "next": {"/"}})
	assert.Equal(t, http.StatusForbidden, code, "a name set by another site's form")

	// The way back stays on the console, however the path is spelled.
	for next, want := range map[string]string{
		"/vaults/vault1?state=SoftDeleted": "/vaults/vault1?state=SoftDeleted",
		"//evil.example/":                  "/",
		"/./\\evil.example":                "/",
		"/../\\evil.example":               "/",
		"/%5Cevil.example":                 "/",
		"/.//evil.example":                 "/evil.example",
		"https://evil.example/":            "/",
		"/a/../b":                          "/b",
	} {
		code, _, loc := o.post("/operator", url.Values{"name": {" Bob "}, "next": {next}})
		assert.Equal(t, http.StatusSeeOther, code)
		assert.Equal(t, want, loc, "next %q", next)
	}
	_, body = o.get("/")
	assert.Contains(t, body, "Signed in as <strong>Bob</strong>")
}

func mustGet(t *testing.T, u string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	require.NoError(t, err)
	return req
}

// TestDevModeAnswersOnlyAtLoopbackNames: a page whose name was re-pointed
// at 127.0.0.1 (DNS rebinding) is same-origin with the console in the
// browser's eyes; dev mode, which trusts typed names, does not answer it.
func TestDevModeAnswersOnlyAtLoopbackNames(t *testing.T) {
	k := startCluster(t, Options{})
	k.protect("vault1", "vm1")
	alice := k.operator("alice")
	for host, want := range map[string]int{
		"evil.example:80": http.StatusMisdirectedRequest,
		"evil.example":    http.StatusMisdirectedRequest,
		"localhost:8234":  http.StatusOK,
		"[::1]:8234":      http.StatusOK,
	} {
		req, err := http.NewRequest(http.MethodGet, k.url+"/vaults/vault1", nil)
		require.NoError(t, err)
		req.Host = host
		// The client's jar keys cookies by the name it asks for; a browser
		// at that name holds the console's cookies.
		for _, ck := range alice.http.Jar.Cookies(req.URL) {
			req.AddCookie(ck)
		}
		code, _, _ := alice.do(req)
		assert.Equal(t, want, code, host)
	}
	form := url.Values{"csrf": {alice.token()}}
	req, err := http.NewRequest(http.MethodPost, k.url+"/vaults/vault1/items/vm1/stop", strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Host = "evil.example"
	code, _, _ := alice.do(req)
	assert.Equal(t, http.StatusMisdirectedRequest, code)
	assert.Equal(t, protocol.Protected, k.status("vault1", "vm1").ProtectionState)
}

// TestProductionTakesTheOperatorOnlyFromTheProxysHeader: without the
// header every request is refused; a cookie cannot stand in for it.
func TestProductionTakesTheOperatorOnlyFromTheProxysHeader(t *testing.T) {
	k := startCluster(t, Options{IdentityHeader: "X-Forwarded-Email"})
	k.protect("vault1", "vm1")
	o := k.operator("")
	// A dev-mode name cookie, however it got there, counts for nothing.
	u, err := url.Parse(k.url)
	require.NoError(t, err)
	o.http.Jar.SetCookies(u, []*http.Cookie{{Name: operatorCookie, Value: "mallory", Path: "/"}})
	for _, path := range []string{"/", "/vaults/vault1", "/vaults/vault1/items/vm1"} {
		code, body := o.get(path)
		assert.Equal(t, http.StatusUnauthorized, code, path)
		assert.Contains(t, body, "X-Forwarded-Email header")
	}
	code, _, _ := o.post("/operator", url.Values{"name": {"mallory"}})
	assert.Equal(t, http.StatusForbidden, code, "no name of one's own choosing")
	code, _, _ = o.post("/vaults/vault1/items/vm1/stop", url.Values{})
	assert.Equal(t, http.StatusUnauthorized, code)
	assert.Equal(t, protocol.Protected, k.status("vault1", "vm1").ProtectionState)

	// A proxy that appends its header to the client's leaves two: neither
	// is taken.
	o.header["X-Forwarded-Email"] = []string{"mallory@example.com", "carol@example.com"}
	code, _ = o.get("/")
	assert.Equal(t, http.StatusUnauthorized, code)

	o.header.Set("X-Forwarded-Email", "carol@example.com")
	code, body := o.get("/vaults/vault1/items/vm1")
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, "Signed in as <strong>carol@example.com</strong>")
	assert.NotContains(t, body, `href="/operator"`, "the proxy's identity cannot be changed here")
	code, _, _ = o.post("/vaults/vault1/items/vm1/stop", url.Values{})
	require.Equal(t, http.StatusSeeOther, code)
	st := k.status("vault1", "vm1")
	assert.Equal(t, protocol.ProtectionStopped, st.ProtectionState)
	assert.Equal(t, "carol@example.com", st.Audit[len(st.Audit)-1].RequestedBy)
}
