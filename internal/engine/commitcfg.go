package engine

import (
	"encoding/json"
	"fmt"
	"path"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"

	"github.com/berth-dev/berth/internal/errdefs"
)

// ApplyChanges applies Dockerfile instructions (docker commit/import
// --change: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, VOLUME, WORKDIR,
// STOPSIGNAL) to cfg, docker's way: an ENTRYPOINT without a CMD among the
// changes clears the command.
func ApplyChanges(cfg *container.Config, changes []string) error {
	cmdSet := false
	for _, ch := range changes {
		ch = strings.TrimSpace(ch)
		if ch == "" {
			continue
		}
		instr, rest := ch, ""
		if i := strings.IndexAny(ch, " \t"); i >= 0 {
			instr, rest = ch[:i], strings.TrimSpace(ch[i:])
		}
		instr = strings.ToLower(instr)
		switch instr {
		case "cmd":
			cfg.Cmd, cmdSet = execOrShell(rest), true
		case "entrypoint":
			cfg.Entrypoint = execOrShell(rest)
			if !cmdSet {
				cfg.Cmd = nil
			}
		case "env", "label":
			kvs, err := keyValues(instr, rest)
			if err != nil {
				return err
			}
			for _, kv := range kvs {
				if instr == "env" {
					cfg.Env = setEnv(cfg.Env, kv[0]+"="+kv[1])
					continue
				}
				if cfg.Labels == nil {
					cfg.Labels = map[string]string{}
				}
				cfg.Labels[kv[0]] = kv[1]
			}
		case "expose":
			for _, p := range words(rest) {
				if !strings.Contains(p, "/") {
					p += "/tcp"
				}
				port, err := network.ParsePort(p)
				if err != nil {
					return fmt.Errorf("invalid port %q: %w", p, errdefs.ErrInvalidArgument)
				}
				if cfg.ExposedPorts == nil {
					cfg.ExposedPorts = network.PortSet{}
				}
				cfg.ExposedPorts[port] = struct{}{}
			}
		case "user":
			cfg.User = unquote(rest)
		case "workdir":
			wd := unquote(rest)
			if !path.IsAbs(wd) {
				wd = path.Join("/", cfg.WorkingDir, wd)
			}
			cfg.WorkingDir = wd
		case "stopsignal":
			cfg.StopSignal = unquote(rest)
		case "volume":
			vols := jsonList(rest)
			if vols == nil {
				vols = words(rest)
			}
			for _, v := range vols {
				if cfg.Volumes == nil {
					cfg.Volumes = map[string]struct{}{}
				}
				cfg.Volumes[v] = struct{}{}
			}
		default:
			return fmt.Errorf("%s is not a valid change command: %w", instr, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// execOrShell is CMD/ENTRYPOINT's argument: a JSON list, or a command
// line for /bin/sh -c.
func execOrShell(s string) []string {
	if l := jsonList(s); l != nil {
		return l
	}
	return []string{"/bin/sh", "-c", s}
}

func jsonList(s string) []string {
	if !strings.HasPrefix(s, "[") {
		return nil
	}
	var l []string
	if err := json.Unmarshal([]byte(s), &l); err != nil {
		return nil
	}
	if l == nil {
		l = []string{}
	}
	return l
}

// keyValues parses ENV/LABEL arguments: k=v pairs (quotes allowed), or
// ENV's old "k v" form.
func keyValues(instr, s string) ([][2]string, error) {
	ws := words(s)
	if len(ws) == 0 {
		return nil, fmt.Errorf("%s requires at least one argument: %w", strings.ToUpper(instr), errdefs.ErrInvalidArgument)
	}
	if !strings.Contains(ws[0], "=") {
		if instr != "env" || len(ws) < 2 {
			return nil, fmt.Errorf("%s names must be followed by '=value': %w", strings.ToUpper(instr), errdefs.ErrInvalidArgument)
		}
		_, v, _ := strings.Cut(strings.TrimSpace(s), " ")
		return [][2]string{{ws[0], unquote(strings.TrimSpace(v))}}, nil
	}
	var out [][2]string
	for _, w := range ws {
		k, v, ok := strings.Cut(w, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%s names must be followed by '=value': %w", strings.ToUpper(instr), errdefs.ErrInvalidArgument)
		}
		out = append(out, [2]string{k, v})
	}
	return out, nil
}

// words splits s at blanks outside quotes, dropping the quotes and
// honouring backslash escapes.
func words(s string) []string {
	var out []string
	var cur strings.Builder
	in, quote, esc := false, rune(0), false
	for _, r := range s {
		switch {
		case esc:
			cur.WriteRune(r)
			esc, in = false, true
		case r == '\\' && quote != '\'':
			esc = true
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '"' || r == '\'':
			quote, in = r, true
		case r == ' ' || r == '\t':
			if in {
				out = append(out, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if in {
		out = append(out, cur.String())
	}
	return out
}

func unquote(s string) string {
	if w := words(s); len(w) == 1 {
		return w[0]
	}
	return strings.TrimSpace(s)
}
