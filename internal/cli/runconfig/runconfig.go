// Package runconfig turns the flags of `berth run` and `berth create` into
// the Engine API's container configuration. It is the one place that knows
// docker's flag syntax (sizes, env files, restart policies), so the cobra
// layer only collects strings.
package runconfig

import (
	"bufio"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/docker/go-units"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
)

// Options are the flags of `run`/`create`, as typed.
type Options struct {
	Name     string
	Env      []string
	EnvFiles []string
	Volumes  []string
	Mounts   []string // --mount
	// VolumeDriver is --volume-driver, for the volumes -v names.
	VolumeDriver string
	// VolumesFrom is --volumes-from CONTAINER[:ro|rw].
	VolumesFrom []string
	Workdir     string
	User        string
	Entrypoint  string
	entrySet    bool
	Labels      []string
	Memory      string
	CPUs        string
	PidsLimit   int64
	pidsSet     bool
	CapAdd      []string
	CapDrop     []string
	ReadOnly    bool
	Tmpfs       []string
	Restart     string
	Init        bool
	initSet     bool
	Rm          bool
	// Networks is --network, repeatable: the first is the network mode,
	// the others are joined too (API 1.44+).
	Networks   []string
	Privileged bool
	Hostname   string
	StopSignal string
	Tty        bool
	Stdin      bool
	Detach     bool
	DetachKeys string // read by the CLI, not sent
	Pull       string // missing (default), always or never: read by the CLI
	Publish    []string
	PublishAll bool
	Expose     []string
	// Networking: --network-alias, --ip, --add-host, --dns, --dns-search,
	// --dns-option, --domainname.
	Aliases    []string
	IP         string
	AddHosts   []string
	DNS        []string
	DNSSearch  []string
	DNSOptions []string
	Domainname string
	MacAddress string // --mac-address
	// ConsoleSize is the CLI's terminal (height, width) for a -t container,
	// sent with the create so the first screen has the right size.
	ConsoleSize [2]uint
	// Attach is -a/--attach: the streams to attach (stdin, stdout,
	// stderr); empty means docker's default.
	Attach []string
	// CLI-side flags: --cidfile, -q, --platform, --sig-proxy.
	CIDFile  string
	Quiet    bool
	Platform string
	SigProxy bool
	Extra
}

// SetEntrypoint records an explicit --entrypoint, even an empty one (which
// clears the image's entrypoint, as in docker).
func (o *Options) SetEntrypoint(v string) { o.Entrypoint, o.entrySet = v, true }

// SetPidsLimit records an explicit --pids-limit.
func (o *Options) SetPidsLimit(v int64) { o.PidsLimit, o.pidsSet = v, true }

// SetInit records an explicit --init or --init=false.
func (o *Options) SetInit(v bool) { o.Init, o.initSet = v, true }

// Config is what ContainerCreate needs.
type Config struct {
	Config           *container.Config
	HostConfig       *container.HostConfig
	NetworkingConfig *network.NetworkingConfig
}

// Build validates the options and fills the API structures. args is
// IMAGE [COMMAND] [ARG...].
func (o *Options) Build(args []string) (Config, error) {
	if len(args) == 0 {
		return Config{}, fmt.Errorf("an image is required")
	}
	env, err := o.env()
	if err != nil {
		return Config{}, err
	}
	labels, err := keyValues(o.Labels)
	if err != nil {
		return Config{}, fmt.Errorf("invalid label: %w", err)
	}
	cfg := &container.Config{
		Image:        args[0],
		Cmd:          args[1:],
		Env:          env,
		WorkingDir:   o.Workdir,
		User:         o.User,
		Labels:       labels,
		Hostname:     o.Hostname,
		Domainname:   o.Domainname,
		StopSignal:   o.StopSignal,
		Tty:          o.Tty,
		OpenStdin:    o.Stdin,
		AttachStdin:  o.Stdin && !o.Detach,
		AttachStdout: !o.Detach,
		AttachStderr: !o.Detach,
		StdinOnce:    o.Stdin && !o.Detach,
	}
	if len(cfg.Cmd) == 0 {
		cfg.Cmd = nil
	}
	if len(o.Attach) > 0 {
		if o.Detach {
			return Config{}, fmt.Errorf("conflicting options: cannot specify both --attach and --detach")
		}
		cfg.AttachStdin, cfg.AttachStdout, cfg.AttachStderr = false, false, false
		for _, s := range o.Attach {
			switch strings.ToLower(s) {
			case "stdin":
				cfg.AttachStdin = true
			case "stdout":
				cfg.AttachStdout = true
			case "stderr":
				cfg.AttachStderr = true
			default:
				return Config{}, fmt.Errorf("invalid argument %q for \"-a, --attach\" flag: valid streams are STDIN, STDOUT and STDERR", s)
			}
		}
		cfg.StdinOnce = cfg.AttachStdin && o.Stdin
	}
	if o.entrySet {
		// An empty --entrypoint resets the image's entrypoint.
		cfg.Entrypoint = []string{""}
		if o.Entrypoint != "" {
			cfg.Entrypoint = []string{o.Entrypoint}
		}
	}
	hc := &container.HostConfig{
		CapAdd:         o.CapAdd,
		CapDrop:        o.CapDrop,
		ReadonlyRootfs: o.ReadOnly,
		AutoRemove:     o.Rm,
		Privileged:     o.Privileged,
		NetworkMode:    container.NetworkMode(o.network()),
		ConsoleSize:    o.ConsoleSize,
	}
	if hc.NetworkMode == "" {
		hc.NetworkMode = "default"
	}
	if o.Memory != "" {
		if hc.Memory, err = units.RAMInBytes(o.Memory); err != nil {
			return Config{}, fmt.Errorf("invalid argument %q for \"-m, --memory\" flag: %w", o.Memory, err)
		}
	}
	if o.CPUs != "" {
		if hc.NanoCPUs, err = nanoCPUs(o.CPUs); err != nil {
			return Config{}, fmt.Errorf("invalid argument %q for \"--cpus\" flag: %w", o.CPUs, err)
		}
	}
	if o.pidsSet {
		v := o.PidsLimit
		hc.PidsLimit = &v
	}
	if o.initSet {
		v := o.Init
		hc.Init = &v
	}
	if err := o.mounts(cfg, hc); err != nil {
		return Config{}, err
	}
	if err := o.Extra.apply(cfg, hc); err != nil {
		return Config{}, err
	}
	exposed, bindings, err := Publish(o.Publish)
	if err != nil {
		return Config{}, err
	}
	for _, e := range o.Expose {
		// --expose takes a port or a range, without a host side.
		ex, _, err := Publish([]string{e})
		if err != nil || strings.Contains(e, ":") {
			return Config{}, fmt.Errorf("invalid argument %q for \"--expose\" flag: invalid range format for --expose", e)
		}
		for p := range ex {
			exposed[p] = struct{}{}
		}
	}
	if len(exposed) > 0 {
		cfg.ExposedPorts = exposed
	}
	if len(bindings) > 0 {
		hc.PortBindings = bindings
	}
	hc.PublishAllPorts = o.PublishAll
	if hc.RestartPolicy, err = restartPolicy(o.Restart); err != nil {
		return Config{}, err
	}
	if o.Rm && hc.RestartPolicy.Name != "" && hc.RestartPolicy.Name != container.RestartPolicyDisabled {
		return Config{}, fmt.Errorf("conflicting options: cannot specify both --restart and --rm")
	}
	nc, err := o.networking(hc)
	if err != nil {
		return Config{}, err
	}
	return Config{Config: cfg, HostConfig: hc, NetworkingConfig: nc}, nil
}

// networking fills the DNS and host settings and the endpoint of the
// container's network (--network-alias, --ip), as docker's CLI does.
func (o *Options) networking(hc *container.HostConfig) (*network.NetworkingConfig, error) {
	for _, d := range o.DNS {
		a, err := netip.ParseAddr(d)
		if err != nil {
			return nil, fmt.Errorf("invalid argument %q for \"--dns\" flag: %s is not an ip address", d, d)
		}
		hc.DNS = append(hc.DNS, a)
	}
	hc.DNSSearch, hc.DNSOptions = o.DNSSearch, o.DNSOptions
	for _, h := range o.AddHosts {
		name, ip, ok := strings.Cut(h, "=")
		if !ok {
			name, ip, ok = strings.Cut(h, ":")
		}
		if !ok || name == "" || ip == "" {
			return nil, fmt.Errorf("invalid argument %q for \"--add-host\" flag: bad format for add-host: %q", h, h)
		}
		if _, err := netip.ParseAddr(strings.Trim(ip, "[]")); err != nil && ip != "host-gateway" {
			return nil, fmt.Errorf("invalid argument %q for \"--add-host\" flag: invalid IP address in add-host: %q", h, ip)
		}
		hc.ExtraHosts = append(hc.ExtraHosts, name+":"+ip)
	}
	if len(o.Aliases) == 0 && o.IP == "" && o.MacAddress == "" && len(o.Networks) < 2 {
		return nil, nil
	}
	es := &network.EndpointSettings{Aliases: o.Aliases}
	if o.MacAddress != "" {
		mac, err := net.ParseMAC(o.MacAddress)
		if err != nil || len(mac) != 6 {
			return nil, fmt.Errorf("invalid argument %q for \"--mac-address\" flag: %s is not a valid mac address", o.MacAddress, o.MacAddress)
		}
		es.MacAddress = network.HardwareAddr(mac)
	}
	if o.IP != "" {
		a, err := netip.ParseAddr(o.IP)
		if err != nil {
			return nil, fmt.Errorf("invalid argument %q for \"--ip\" flag: ParseAddr(%q): unable to parse IP", o.IP, o.IP)
		}
		es.IPAMConfig = &network.EndpointIPAMConfig{IPv4Address: a}
	}
	nc := &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{string(hc.NetworkMode): es}}
	for _, n := range o.Networks[min(1, len(o.Networks)):] {
		if _, dup := nc.EndpointsConfig[n]; dup {
			return nil, fmt.Errorf("network %q is specified multiple times", n)
		}
		nc.EndpointsConfig[n] = &network.EndpointSettings{}
	}
	return nc, nil
}

// network is the network mode: the first --network.
func (o *Options) network() string {
	if len(o.Networks) == 0 {
		return ""
	}
	return o.Networks[0]
}

func (o *Options) env() ([]string, error) { return Env(o.EnvFiles, o.Env) }

// Env merges --env-file lines and -e values (later wins, as in docker); a
// bare NAME takes its value from the caller's environment.
func Env(files, values []string) ([]string, error) {
	var out []string
	for _, f := range files {
		lines, err := readEnvFile(f)
		if err != nil {
			return nil, err
		}
		out = append(out, lines...)
	}
	for _, e := range values {
		out = append(out, expand(e))
	}
	return out, nil
}

func expand(e string) string {
	if strings.Contains(e, "=") {
		return e
	}
	if v, ok := os.LookupEnv(e); ok {
		return e + "=" + v
	}
	return e
}

func readEnvFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open env file: %w", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimLeft(sc.Text(), " \t")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, _, _ := strings.Cut(line, "=")
		if strings.ContainsAny(name, " \t") || name == "" {
			return nil, fmt.Errorf("%s:%d: variable %q contains whitespaces", path, n, name)
		}
		out = append(out, expand(line))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read env file %s: %w", path, err)
	}
	return out, nil
}

func keyValues(in []string) (map[string]string, error) {
	if len(in) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(in))
	for _, kv := range in {
		k, v, _ := strings.Cut(kv, "=")
		if k == "" {
			return nil, fmt.Errorf("%q has no key", kv)
		}
		m[k] = v
	}
	return m, nil
}

// nanoCPUs parses "1.5" exactly (no float rounding), as docker does.
func nanoCPUs(s string) (int64, error) {
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return 0, fmt.Errorf("failed to parse %v as a rational number", s)
	}
	n := r.Mul(r, big.NewRat(1e9, 1))
	if !n.IsInt() {
		return 0, fmt.Errorf("value is too precise")
	}
	if n.Sign() < 0 {
		return 0, fmt.Errorf("value must be positive")
	}
	return n.Num().Int64(), nil
}

func restartPolicy(s string) (container.RestartPolicy, error) {
	if s == "" {
		return container.RestartPolicy{}, nil
	}
	name, count, hasCount := strings.Cut(s, ":")
	p := container.RestartPolicy{Name: container.RestartPolicyMode(name)}
	switch p.Name {
	case container.RestartPolicyDisabled, container.RestartPolicyAlways, container.RestartPolicyUnlessStopped:
		if hasCount {
			return p, fmt.Errorf("invalid restart policy: maximum retry count can only be used with 'on-failure'")
		}
	case container.RestartPolicyOnFailure:
		if hasCount {
			n, err := strconv.Atoi(count)
			if err != nil || n < 0 {
				return p, fmt.Errorf("invalid restart policy: maximum retry count must be a positive integer")
			}
			p.MaximumRetryCount = n
		}
	default:
		return p, fmt.Errorf("invalid restart policy format: unknown policy %q; use one of 'no', 'always', 'on-failure', or 'unless-stopped'", name)
	}
	return p, nil
}
