package auth

import (
	"net/http"
	"strconv"
)

// Basic authorizes htpasswd users with HTTP basic auth. Any valid user may
// do anything; anonymous requests may pull when AnonymousPull is set.
type Basic struct {
	Realm         string
	Users         *Htpasswd
	AnonymousPull bool
}

// Authorize implements Authorizer.
func (b *Basic) Authorize(r *http.Request, need []Access) (string, error) {
	user, pass, ok := r.BasicAuth()
	if ok && b.Users.Verify(user, pass) {
		return user, nil
	}
	if !ok && b.AnonymousPull && pullOnly(need) {
		return "", nil
	}
	reason := "authentication required"
	if ok {
		reason = "invalid username or password"
	}
	return "", &Challenge{Header: "Basic realm=" + strconv.Quote(b.Realm) + `,charset="UTF-8"`, Reason: reason}
}

func pullOnly(need []Access) bool {
	for _, a := range need {
		if a.Type != "repository" {
			return false
		}
		for _, act := range a.Actions {
			if act != "pull" {
				return false
			}
		}
	}
	return true
}
