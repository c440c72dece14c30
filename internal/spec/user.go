package spec

import (
	"fmt"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/sys/user"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/errdefs"
)

type resolvedUser struct {
	user specs.User
	home string
}

// resolveUser reads the rootfs's /etc/passwd and /etc/group the way docker
// does: a name must exist there, a numeric uid need not, and the primary
// group defaults to the user's. The paths are resolved inside the rootfs so
// an image's symlinked /etc/passwd cannot make the daemon read host files.
func resolveUser(rootfs, spec string, groupAdd []string) (resolvedUser, error) {
	passwd, err := securejoin.SecureJoin(rootfs, "/etc/passwd")
	if err != nil {
		return resolvedUser{}, fmt.Errorf("resolve /etc/passwd: %w", err)
	}
	group, err := securejoin.SecureJoin(rootfs, "/etc/group")
	if err != nil {
		return resolvedUser{}, fmt.Errorf("resolve /etc/group: %w", err)
	}
	defaults := &user.ExecUser{Uid: 0, Gid: 0, Home: "/"}
	eu, err := user.GetExecUserPath(spec, defaults, passwd, group)
	if err != nil {
		msg := err.Error()
		if !strings.HasPrefix(msg, "unable to find user") { // moby/sys/user's own words often say it already
			msg = fmt.Sprintf("unable to find user %s: %s", spec, msg)
		}
		return resolvedUser{}, fmt.Errorf("%s: %w", msg, errdefs.ErrInvalidArgument)
	}
	u := specs.User{UID: uint32(eu.Uid), GID: uint32(eu.Gid)}
	for _, g := range eu.Sgids {
		u.AdditionalGids = append(u.AdditionalGids, uint32(g))
	}
	if len(groupAdd) > 0 {
		gids, err := user.GetAdditionalGroupsPath(groupAdd, group)
		if err != nil {
			return resolvedUser{}, fmt.Errorf("group-add %v: %v: %w", groupAdd, err, errdefs.ErrInvalidArgument)
		}
		for _, g := range gids {
			u.AdditionalGids = append(u.AdditionalGids, uint32(g))
		}
	}
	return resolvedUser{user: u, home: eu.Home}, nil
}

// ResolveUser resolves a docker --user value ("name", "uid:gid",
// "name:group") against the rootfs's passwd and group files, for execs;
// it returns the user and its home directory.
func ResolveUser(rootfs, spec string, groupAdd []string) (specs.User, string, error) {
	u, err := resolveUser(rootfs, spec, groupAdd)
	return u.user, u.home, err
}
