package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Token issues and checks bearer tokens: JWTs signed with HMAC-SHA256 under
// a key only this registry knows, so the registry that issues a token is the
// one that verifies it and no key distribution is needed.
type Token struct {
	// Realm is the URL of the token endpoint clients are sent to.
	Realm string
	// Service names this registry in tokens (their audience).
	Service string
	Users   *Htpasswd
	Key     []byte
	// TTL is how long a token lives; clients ask again when it expires.
	TTL time.Duration
	// AnonymousPull grants pull to requests without credentials.
	AnonymousPull bool
	// Now defaults to time.Now; tests move it.
	Now func() time.Time
}

const tokenIssuer = "berth-registry"

type claims struct {
	Issuer    string   `json:"iss"`
	Subject   string   `json:"sub"`
	Audience  string   `json:"aud"`
	ExpiresAt int64    `json:"exp"`
	NotBefore int64    `json:"nbf"`
	IssuedAt  int64    `json:"iat"`
	ID        string   `json:"jti"`
	Access    []Access `json:"access"`
}

var jwtHeader = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))

func (t *Token) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

func (t *Token) sign(c claims) (string, error) {
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	msg := jwtHeader + "." + base64.RawURLEncoding.EncodeToString(payload)
	m := hmac.New(sha256.New, t.Key)
	m.Write([]byte(msg))
	return msg + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil)), nil
}

func (t *Token) verify(tok string) (claims, error) {
	var c claims
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || parts[0] != jwtHeader {
		return c, errors.New("malformed token")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return c, errors.New("malformed token signature")
	}
	m := hmac.New(sha256.New, t.Key)
	m.Write([]byte(parts[0] + "." + parts[1]))
	if !hmac.Equal(sig, m.Sum(nil)) {
		return c, errors.New("bad token signature")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return c, errors.New("malformed token payload")
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return c, errors.New("malformed token payload")
	}
	now := t.now().Unix()
	if c.Issuer != tokenIssuer || c.Audience != t.Service {
		return c, errors.New("token is for another service")
	}
	if now >= c.ExpiresAt || now < c.NotBefore-60 {
		return c, errors.New("token expired")
	}
	return c, nil
}

// Authorize implements Authorizer.
func (t *Token) Authorize(r *http.Request, need []Access) (string, error) {
	scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") || tok == "" {
		if t.AnonymousPull && pullOnly(need) {
			return "", nil
		}
		return "", t.challenge(need, "", "authentication required")
	}
	c, err := t.verify(tok)
	if err != nil {
		return "", t.challenge(need, "invalid_token", err.Error())
	}
	for _, n := range need {
		if !covers(c.Access, n) {
			// 401, not 403: clients answer this challenge by fetching a
			// token with the wider scope it names.
			return "", t.challenge(need, "insufficient_scope", "token does not grant "+n.String())
		}
	}
	return c.Subject, nil
}

func (t *Token) challenge(need []Access, errCode, reason string) *Challenge {
	h := "Bearer realm=" + strconv.Quote(t.Realm) + ",service=" + strconv.Quote(t.Service)
	if len(need) > 0 {
		scopes := make([]string, len(need))
		for i, n := range need {
			scopes[i] = n.String()
		}
		h += ",scope=" + strconv.Quote(strings.Join(scopes, " "))
	}
	if errCode != "" {
		h += ",error=" + strconv.Quote(errCode)
	}
	return &Challenge{Header: h, Reason: reason}
}

type tokenResponse struct {
	Token       string `json:"token"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
	IssuedAt    string `json:"issued_at"`
}

// ServeHTTP is the token endpoint (docker's token authentication spec):
// GET ?service=...&scope=... with optional basic auth. Valid users receive
// what they ask for; anonymous callers receive pull when AnonymousPull is
// set and an empty grant otherwise; wrong credentials are refused.
func (t *Token) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	q := r.URL.Query()
	if r.Method == http.MethodPost {
		// OAuth2 password grant, as containerd and docker use after login.
		if err := r.ParseForm(); err == nil {
			q = r.PostForm
		}
	}
	if svc := q.Get("service"); svc != "" && svc != t.Service {
		http.Error(w, "unknown service", http.StatusBadRequest)
		return
	}
	user, pass, hasAuth := r.BasicAuth()
	if !hasAuth && q.Get("grant_type") == "password" {
		user, pass, hasAuth = q.Get("username"), q.Get("password"), true
	}
	if hasAuth && !t.Users.Verify(user, pass) {
		w.Header().Set("WWW-Authenticate", `Basic realm="berth-registry-token"`)
		http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"invalid username or password"}]}`, http.StatusUnauthorized)
		return
	}
	if !hasAuth {
		user = ""
	}
	var requested []Access
	for _, s := range q["scope"] {
		for one := range strings.FieldsSeq(s) {
			a, err := ParseScope(one)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			requested = append(requested, a)
		}
	}
	granted := grant(user, requested)
	if user == "" && t.AnonymousPull {
		for _, a := range requested {
			if a.Type == "repository" {
				granted = append(granted, Repository(a.Name, "pull"))
			}
		}
	}
	now := t.now()
	ttl := t.TTL
	if ttl <= 0 {
		ttl = 5 * time.Minute
	}
	id := make([]byte, 12)
	rand.Read(id)
	tok, err := t.sign(claims{
		Issuer: tokenIssuer, Subject: user, Audience: t.Service,
		ExpiresAt: now.Add(ttl).Unix(), NotBefore: now.Unix(), IssuedAt: now.Unix(),
		ID: base64.RawURLEncoding.EncodeToString(id), Access: granted,
	})
	if err != nil {
		http.Error(w, fmt.Sprintf("sign token: %v", err), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(tokenResponse{
		Token: tok, AccessToken: tok, ExpiresIn: int(ttl / time.Second),
		IssuedAt: now.UTC().Format(time.RFC3339),
	})
}
