package command

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/network"
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/cli/client"
)

// networkCommand is `berth network`: create, ls, inspect, rm, prune,
// connect, disconnect.
func (c *CLI) networkCommand() *cobra.Command {
	cmd := c.groupCommand("network", "Manage networks")
	cmd.AddCommand(c.networkCreateCommand(), c.networkLsCommand(), c.networkInspectCommand(), c.networkRmCommand(),
		c.networkPruneCommand(), c.networkConnectCommand(), c.networkDisconnectCommand())
	return cmd
}

func (c *CLI) networkCreateCommand() *cobra.Command {
	var driver, ipamDriver string
	var subnets, gateways, ranges, labels, opts []string
	var internal, attachable, ipv6 bool
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] NETWORK",
		Short: "Create a network",
		Args:  c.exactArgs(1),
	}
	f := cmd.Flags()
	f.StringVarP(&driver, "driver", "d", "bridge", "Driver to manage the Network")
	f.StringArrayVar(&subnets, "subnet", nil, "Subnet in CIDR format that represents a network segment")
	f.StringArrayVar(&gateways, "gateway", nil, "IPv4 or IPv6 Gateway for the master subnet")
	f.StringArrayVar(&ranges, "ip-range", nil, "Allocate container ip from a sub-range")
	f.BoolVar(&internal, "internal", false, "Restrict external access to the network")
	f.BoolVar(&attachable, "attachable", false, "Enable manual container attachment")
	f.BoolVar(&ipv6, "ipv6", false, "Enable or disable IPv6 networking")
	f.StringVar(&ipamDriver, "ipam-driver", "default", "IP Address Management Driver")
	f.StringArrayVar(&labels, "label", nil, "Set metadata on a network")
	f.StringArrayVarP(&opts, "opt", "o", nil, "Set driver specific options")
	cmd.RunE = c.action(func(ctx context.Context, args []string) error {
		ipam, err := ipamConfig(subnets, gateways, ranges)
		if err != nil {
			return err
		}
		ipam.Driver = ipamDriver
		o := client.NetworkCreateOptions{
			Driver: driver, IPAM: ipam, Internal: internal, Attachable: attachable,
			Labels: keyValueMap(labels), Options: keyValueMap(opts),
		}
		if cmd.Flags().Changed("ipv6") {
			o.EnableIPv6 = &ipv6
		}
		api, err := c.Client()
		if err != nil {
			return err
		}
		res, err := api.NetworkCreate(ctx, args[0], o)
		if err != nil {
			return c.explain(err)
		}
		fmt.Fprintln(c.Out, res.ID)
		return nil
	})
	return cmd
}

// ipamConfig pairs docker's --subnet, --gateway and --ip-range flags: each
// gateway and range belongs to the subnet that contains it.
func ipamConfig(subnets, gateways, ranges []string) (*network.IPAM, error) {
	ipam := &network.IPAM{}
	for _, s := range subnets {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, &StatusError{Code: 125, Message: fmt.Sprintf("invalid argument %q for \"--subnet\" flag: invalid CIDR address: %s", s, s)}
		}
		ipam.Config = append(ipam.Config, network.IPAMConfig{Subnet: p})
	}
	place := func(flag, v string, set func(*network.IPAMConfig) bool) error {
		for i := range ipam.Config {
			if set(&ipam.Config[i]) {
				return nil
			}
		}
		return &StatusError{Code: 1, Message: fmt.Sprintf("no matching subnet for %s %s", flag, v)}
	}
	for _, g := range gateways {
		a, err := netip.ParseAddr(g)
		if err != nil {
			return nil, &StatusError{Code: 125, Message: fmt.Sprintf("invalid argument %q for \"--gateway\" flag: ParseAddr(%q): unable to parse IP", g, g)}
		}
		if err := place("gateway", g, func(c *network.IPAMConfig) bool {
			if c.Subnet.Contains(a) && !c.Gateway.IsValid() {
				c.Gateway = a
				return true
			}
			return false
		}); err != nil {
			return nil, err
		}
	}
	for _, r := range ranges {
		p, err := netip.ParsePrefix(r)
		if err != nil {
			return nil, &StatusError{Code: 125, Message: fmt.Sprintf("invalid argument %q for \"--ip-range\" flag: invalid CIDR address: %s", r, r)}
		}
		if err := place("ip-range", r, func(c *network.IPAMConfig) bool {
			if c.Subnet.Contains(p.Addr()) && !c.IPRange.IsValid() {
				c.IPRange = p
				return true
			}
			return false
		}); err != nil {
			return nil, err
		}
	}
	return ipam, nil
}

const networksTable = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"

var networksHeader = map[string]string{
	"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE", "IPv4": "IPV4", "IPv6": "IPV6",
	"Internal": "INTERNAL", "Labels": "LABELS", "CreatedAt": "CREATED AT",
}

func (c *CLI) networkLsCommand() *cobra.Command {
	var quiet, noTrunc bool
	var filters []string
	var tmpl string
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List networks",
		Args:    c.noArgs(),
	}
	f := cmd.Flags()
	f.BoolVarP(&quiet, "quiet", "q", false, "Only display network IDs")
	f.BoolVar(&noTrunc, "no-trunc", false, "Do not truncate the output")
	f.StringArrayVarP(&filters, "filter", "f", nil, `Provide filter values (e.g. "driver=bridge")`)
	f.StringVar(&tmpl, "format", "", "Format output using a custom template")
	cmd.RunE = c.action(func(ctx context.Context, _ []string) error {
		return c.runLs(ctx, lsVerb{
			help: "network ls", quietTmpl: "{{.ID}}", table: networksTable, header: networksHeader,
			rows: func(ctx context.Context, api *client.Client, fl client.Filters) ([]any, error) {
				res, err := api.NetworkList(ctx, client.NetworkListOptions{Filters: fl})
				if err != nil {
					return nil, err
				}
				nets := res.Items
				sort.Slice(nets, func(i, j int) bool { return nets[i].Name < nets[j].Name })
				rows := make([]any, len(nets))
				for i, n := range nets {
					rows[i] = &networkRow{n: n.Network, trunc: !noTrunc}
				}
				return rows, nil
			},
		}, quiet, tmpl, filters)
	})
	return cmd
}

// networkRow is one network as docker's `network ls` templates see it.
type networkRow struct {
	n     network.Network
	trunc bool
}

func (r *networkRow) ID() string {
	if r.trunc && len(r.n.ID) > 12 {
		return r.n.ID[:12]
	}
	return r.n.ID
}
func (r *networkRow) Name() string      { return r.n.Name }
func (r *networkRow) Driver() string    { return r.n.Driver }
func (r *networkRow) Scope() string     { return r.n.Scope }
func (r *networkRow) IPv4() string      { return fmt.Sprint(r.n.EnableIPv4) }
func (r *networkRow) IPv6() string      { return fmt.Sprint(r.n.EnableIPv6) }
func (r *networkRow) Internal() string  { return fmt.Sprint(r.n.Internal) }
func (r *networkRow) CreatedAt() string { return r.n.Created.String() }
func (r *networkRow) Label(name string) string {
	return r.n.Labels[name]
}
func (r *networkRow) Labels() string { return joinLabels(r.n.Labels) }

// MarshalJSON gives `{{json .}}` the columns, as docker does.
func (r *networkRow) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]any{
		"CreatedAt": r.CreatedAt(), "Driver": r.Driver(), "ID": r.ID(), "IPv4": r.IPv4(), "IPv6": r.IPv6(),
		"Internal": r.Internal(), "Labels": r.Labels(), "Name": r.Name(), "Scope": r.Scope(),
	})
}

func (c *CLI) networkInspectCommand() *cobra.Command {
	var tmpl string
	var verbose bool
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] NETWORK [NETWORK...]",
		Short: "Display detailed information on one or more networks",
		Args:  c.minArgs(1),
	}
	cmd.Flags().StringVarP(&tmpl, "format", "f", "", "Format output using a custom template")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "Verbose output for diagnostics")
	cmd.RunE = c.action(func(ctx context.Context, args []string) error {
		return c.inspectEach(args, tmpl, func(api *client.Client, name string) (inspected, error) {
			res, err := api.NetworkInspect(ctx, name, client.NetworkInspectOptions{Verbose: verbose})
			if err != nil || len(bytes.TrimSpace(res.Raw)) > 0 {
				return inspected{raw: res.Raw}, err
			}
			raw, err := json.Marshal(res.Network)
			return inspected{raw: raw}, err
		})
	})
	return cmd
}

func (c *CLI) networkRmCommand() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "rm NETWORK [NETWORK...]",
		Aliases: []string{"remove"},
		Short:   "Remove one or more networks",
		Args:    c.minArgs(1),
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not error if the network does not exist")
	cmd.RunE = c.action(func(ctx context.Context, args []string) error {
		api, err := c.Client()
		if err != nil {
			return err
		}
		err = c.forEach(args, func(name string) error {
			if _, err := api.NetworkRemove(ctx, name, client.NetworkRemoveOptions{}); err != nil {
				if force && cerrdefs.IsNotFound(err) {
					return nil
				}
				return err
			}
			fmt.Fprintln(c.Out, name)
			return nil
		})
		var se *StatusError
		if errors.As(err, &se) && se.Message == "" {
			// docker's network rm ends its error lines with this one.
			return &StatusError{Code: se.Code, Message: "exit status 1"}
		}
		return err
	})
	return cmd
}

func (c *CLI) networkPruneCommand() *cobra.Command {
	cmd := c.pruneCommand("networks",
		func() string {
			return "WARNING! This will remove all custom networks not used by at least one container."
		}, nil,
		func(ctx context.Context, api *client.Client, f client.Filters) (string, uint64, error) {
			res, err := api.NetworkPrune(ctx, client.NetworkPruneOptions{Filters: f})
			if err != nil || len(res.Report.NetworksDeleted) == 0 {
				return "", 0, err
			}
			return "Deleted Networks:\n" + strings.Join(res.Report.NetworksDeleted, "\n") + "\n", 0, nil
		})
	return cmd
}

func (c *CLI) networkConnectCommand() *cobra.Command {
	var aliases, links, linkLocal, driverOpts []string
	var ip, ip6 string
	cmd := &cobra.Command{
		Use:   "connect [OPTIONS] NETWORK CONTAINER",
		Short: "Connect a container to a network",
		Args:  c.exactArgs(2),
	}
	f := cmd.Flags()
	f.StringArrayVar(&aliases, "alias", nil, "Add network-scoped alias for the container")
	f.StringVar(&ip, "ip", "", "IPv4 address (e.g., \"172.30.100.104\")")
	f.StringVar(&ip6, "ip6", "", "IPv6 address (e.g., \"2001:db8::33\")")
	f.StringArrayVar(&links, "link", nil, "Add link to another container")
	f.StringArrayVar(&linkLocal, "link-local-ip", nil, "Add a link-local address for the container")
	f.StringArrayVar(&driverOpts, "driver-opt", nil, "driver options for the network")
	cmd.RunE = c.action(func(ctx context.Context, args []string) error {
		es := &network.EndpointSettings{Aliases: aliases, Links: links}
		if ip != "" || ip6 != "" {
			es.IPAMConfig = &network.EndpointIPAMConfig{}
			for _, a := range []struct {
				flag, v string
				dst     *netip.Addr
			}{{"ip", ip, &es.IPAMConfig.IPv4Address}, {"ip6", ip6, &es.IPAMConfig.IPv6Address}} {
				if a.v == "" {
					continue
				}
				addr, err := netip.ParseAddr(a.v)
				if err != nil {
					return &StatusError{Code: 125, Message: fmt.Sprintf("invalid argument %q for \"--%s\" flag: ParseAddr(%q): unable to parse IP", a.v, a.flag, a.v)}
				}
				*a.dst = addr
			}
		}
		api, err := c.Client()
		if err != nil {
			return err
		}
		_, err = api.NetworkConnect(ctx, args[0], client.NetworkConnectOptions{Container: args[1], EndpointConfig: es})
		return c.explain(err)
	})
	return cmd
}

func (c *CLI) networkDisconnectCommand() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "disconnect [OPTIONS] NETWORK CONTAINER",
		Short: "Disconnect a container from a network",
		Args:  c.exactArgs(2),
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Force the container to disconnect from a network")
	cmd.RunE = c.action(func(ctx context.Context, args []string) error {
		api, err := c.Client()
		if err != nil {
			return err
		}
		_, err = api.NetworkDisconnect(ctx, args[0], client.NetworkDisconnectOptions{Container: args[1], Force: force})
		return c.explain(err)
	})
	return cmd
}

// portCommand is `berth port CONTAINER [PRIVATE_PORT[/PROTO]]`, read from
// inspect's NetworkSettings.Ports as docker's CLI does.
func (c *CLI) portCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "port CONTAINER [PRIVATE_PORT[/PROTO]]",
		Short: "List port mappings or a specific mapping for the container",
		Args: func(cmd *cobra.Command, args []string) error {
			if err := c.minArgs(1)(cmd, args); err != nil {
				return err
			}
			return c.maxArgs(2)(cmd, args)
		},
	}
	cmd.RunE = c.action(func(ctx context.Context, args []string) error {
		_, ctr, err := c.inspectContainer(ctx, args[0])
		if err != nil {
			return err
		}
		var ports network.PortMap
		if ns := ctr.NetworkSettings; ns != nil {
			ports = ns.Ports
		}
		hostAddr := func(b network.PortBinding) string {
			if b.HostIP.Is6() {
				return "[" + b.HostIP.String() + "]:" + b.HostPort
			}
			return b.HostIP.String() + ":" + b.HostPort
		}
		if len(args) == 2 {
			want := args[1]
			if !strings.Contains(want, "/") {
				want += "/tcp"
			}
			p, err := network.ParsePort(want)
			if err != nil {
				return &StatusError{Code: 1, Message: "Error: " + err.Error()}
			}
			bs := ports[p]
			if len(bs) == 0 {
				return &StatusError{Code: 1, Message: fmt.Sprintf("Error: No public port '%s' published for %s", p, args[0])}
			}
			for _, b := range bs {
				fmt.Fprintln(c.Out, hostAddr(b))
			}
			return nil
		}
		keys := make([]network.Port, 0, len(ports))
		for p := range ports {
			keys = append(keys, p)
		}
		sort.Slice(keys, func(i, j int) bool {
			if keys[i].Num() != keys[j].Num() {
				return keys[i].Num() < keys[j].Num()
			}
			return keys[i].Proto() < keys[j].Proto()
		})
		for _, p := range keys {
			for _, b := range ports[p] {
				fmt.Fprintf(c.Out, "%s -> %s\n", p, hostAddr(b))
			}
		}
		return nil
	})
	return cmd
}
