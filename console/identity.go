package console

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"

	"recoveryvault/internal/signing"
)

// Cookies the console sets. Both are HttpOnly and SameSite=Strict: no
// script reads them and no other site's page sends them.
const (
	operatorCookie = "recoveryvault_operator"
	csrfCookie     = "recoveryvault_csrf"
	csrfField      = "csrf"
)

const maxOperatorLength = 128

// operator is who asks, for requestedBy: in production only the trusted
// header an authenticating proxy sets; in dev mode the name kept in a
// cookie. Empty means unknown.
func (c *Console) operator(r *http.Request) string {
	if c.opts.IdentityHeader != "" {
		// One value only: a proxy that appends its header instead of
		// replacing the client's leaves two, and neither can be trusted.
		v := r.Header.Values(c.opts.IdentityHeader)
		if len(v) != 1 {
			return ""
		}
		return cleanOperator(v[0])
	}
	ck, err := r.Cookie(operatorCookie)
	if err != nil {
		return ""
	}
	name, err := url.QueryUnescape(ck.Value)
	if err != nil {
		return ""
	}
	return cleanOperator(name)
}

// cleanOperator accepts a name a person could type: printable, not too
// long, and not one of the names the workflows sign with themselves.
// Anything else is no name.
func cleanOperator(s string) string {
	s = strings.TrimSpace(s)
	if s == "" || utf8.RuneCountInString(s) > maxOperatorLength || !utf8.ValidString(s) || signing.ReservedName(s) {
		return ""
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return ""
		}
	}
	return s
}

// csrfToken is the token forms carry, the same as the request's CSRF
// cookie (double submit); a first visit gets a new one.
func csrfToken(w http.ResponseWriter, r *http.Request) string {
	if ck, err := r.Cookie(csrfCookie); err == nil && len(ck.Value) >= 32 {
		return ck.Value
	}
	token := base64.RawURLEncoding.EncodeToString(randomBytes(32))
	http.SetCookie(w, &http.Cookie{
		Name: csrfCookie, Value: token, Path: "/",
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: secure(r),
	})
	// Later code of this request reads it as if it had come in.
	r.AddCookie(&http.Cookie{Name: csrfCookie, Value: token})
	return token
}

// validCSRF says whether a POST carries the token of its own cookie. A
// page of another site can send the cookie but cannot read it, so it
// cannot put the token in its form.
func validCSRF(r *http.Request) bool {
	ck, err := r.Cookie(csrfCookie)
	if err != nil || len(ck.Value) < 32 {
		return false
	}
	sent := r.PostFormValue(csrfField)
	return subtle.ConstantTimeCompare([]byte(sent), []byte(ck.Value)) == 1
}

// secure marks cookies Secure when the browser reached us over HTTPS,
// directly or through the proxy.
func secure(r *http.Request) bool {
	return r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https"
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return b
}

// localPath accepts a path of this console to go back to after the
// operator says who they are, and nothing that leaves it. The path is
// cleaned first, as http.Redirect will clean it: "/./\evil" would
// otherwise become "/\evil", which browsers read as another host.
func localPath(p string) string {
	if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "\\\x00\r\n") {
		return "/"
	}
	u, err := url.Parse(p)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || strings.ContainsAny(u.Path, "\\\x00\r\n") {
		return "/"
	}
	clean := path.Clean(u.Path)
	if !strings.HasPrefix(clean, "/") || strings.HasPrefix(clean, "//") {
		return "/"
	}
	return (&url.URL{Path: clean, RawQuery: u.RawQuery}).String()
}

// Loopback says whether a host, or host:port, names this machine's
// loopback only. In dev mode a request addressed to any other name is a
// DNS-rebinding page pretending to be the console.
func Loopback(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// operatorForm asks for the operator's name in dev mode.
func (c *Console) operatorForm(w http.ResponseWriter, r *http.Request) {
	if c.opts.IdentityHeader != "" {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	v := c.newView(w, r, "operator", "Who are you?")
	v.Data = operatorData{Next: localPath(r.URL.Query().Get("next")), Name: c.operator(r)}
	if r.URL.Query().Get("act") != "" {
		v.Flash = "Say who you are before you act: every action is recorded under your name. Nothing was done yet: after this, make your choice again."
	}
	c.render(w, v)
}

type operatorData struct {
	Next, Name string
}

// setOperator keeps the name the operator gave in a cookie.
func (c *Console) setOperator(w http.ResponseWriter, r *http.Request) {
	if c.opts.IdentityHeader != "" {
		c.renderProblem(w, r, problem(http.StatusForbidden, "Your identity comes from the %s header set by the proxy; it cannot be changed here.", c.opts.IdentityHeader))
		return
	}
	if !validCSRF(r) {
		c.renderProblem(w, r, errForgedForm)
		return
	}
	next := localPath(r.PostFormValue("next"))
	name := cleanOperator(r.PostFormValue("name"))
	if name == "" {
		v := c.newView(w, r, "operator", "Who are you?")
		v.status = http.StatusBadRequest
		v.Error = "Give a name of 1 to 128 printable characters, such as your e-mail address, and not one the workflows use (system, scheduler, anonymous): it goes into every audit entry you make."
		v.Data = operatorData{Next: next, Name: r.PostFormValue("name")}
		c.render(w, v)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: operatorCookie, Value: url.QueryEscape(name), Path: "/", MaxAge: 365 * 24 * 3600,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: secure(r),
	})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

var errForgedForm = problem(http.StatusForbidden,
	"This form did not come from the console's own page (its CSRF token is missing or wrong), so nothing was changed. Reload the page and try again.")
