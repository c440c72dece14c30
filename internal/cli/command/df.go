package command

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/docker/go-units"
	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/api/types/mount"
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/cli/client"
	"github.com/berth-dev/berth/internal/cli/format"
)

// `system df` and `system prune`.

func (c *CLI) systemCommand() *cobra.Command {
	g := c.groupCommand("system", "Manage berth")
	info := c.infoCommand()
	g.AddCommand(c.dfCommand(), c.systemPruneCommand(), info, c.eventsCommand())
	return g
}

const dfTable = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"

var dfHeader = map[string]string{"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE", "Reclaimable": "RECLAIMABLE"}

// dfRow is one line of the summary.
type dfRow struct {
	typ                              string
	total, active, size, reclaimable int64
	percent                          bool
}

// MarshalJSON gives `--format json` docker's keys.
func (r dfRow) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]string{"Type": r.Type(), "TotalCount": r.TotalCount(), "Active": r.Active(),
		"Size": r.Size(), "Reclaimable": r.Reclaimable()})
}

func (r dfRow) Type() string       { return r.typ }
func (r dfRow) TotalCount() string { return strconv.FormatInt(r.total, 10) }
func (r dfRow) Active() string     { return strconv.FormatInt(r.active, 10) }
func (r dfRow) Size() string       { return units.HumanSize(float64(r.size)) }
func (r dfRow) Reclaimable() string {
	if r.percent && r.size > 0 {
		return fmt.Sprintf("%s (%v%%)", units.HumanSize(float64(r.reclaimable)), r.reclaimable*100/r.size)
	}
	return units.HumanSize(float64(r.reclaimable))
}

func (c *CLI) dfCommand() *cobra.Command {
	var verbose bool
	var tmpl string
	cmd := &cobra.Command{Use: "df [OPTIONS]", Short: "Show berth disk usage", Args: c.noArgs()}
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "Show detailed information on space usage")
	cmd.Flags().StringVar(&tmpl, "format", "", "Format output using a custom template")
	cmd.RunE = c.action(func(ctx context.Context, _ []string) error {
		api, err := c.Client()
		if err != nil {
			return err
		}
		du, err := api.DiskUsage(ctx, client.DiskUsageOptions{Containers: true, Images: true, Volumes: true, BuildCache: true, Verbose: verbose})
		if err != nil {
			return c.explain(err)
		}
		if verbose {
			return c.dfVerbose(du)
		}
		l, err := format.NewLister(c.Out, tmpl, dfTable, dfHeader)
		if err != nil {
			return err
		}
		for _, r := range []dfRow{
			{"Images", du.Images.TotalCount, du.Images.ActiveCount, du.Images.TotalSize, du.Images.Reclaimable, true},
			{"Containers", du.Containers.TotalCount, du.Containers.ActiveCount, du.Containers.TotalSize, du.Containers.Reclaimable, true},
			{"Local Volumes", du.Volumes.TotalCount, du.Volumes.ActiveCount, du.Volumes.TotalSize, du.Volumes.Reclaimable, true},
			{"Build Cache", du.BuildCache.TotalCount, du.BuildCache.ActiveCount, du.BuildCache.TotalSize, du.BuildCache.Reclaimable, false},
		} {
			if err := l.Row(r); err != nil {
				return err
			}
		}
		return l.Flush()
	})
	return cmd
}

// dfContainerRow is a container in `df -v`: ps's columns, its own size.
type dfContainerRow struct{ *psRow }

func (r dfContainerRow) LocalVolumes() string {
	n := 0
	for _, m := range r.c.Mounts {
		if m.Type == mount.TypeVolume {
			n++
		}
	}
	return strconv.Itoa(n)
}

func (r dfContainerRow) Size() string { return units.HumanSizeWithPrecision(float64(r.c.SizeRw), 3) }

type dfVolumeRow struct {
	name        string
	links, size int64
}

func (r dfVolumeRow) Name() string  { return r.name }
func (r dfVolumeRow) Links() string { return strconv.FormatInt(r.links, 10) }
func (r dfVolumeRow) Size() string  { return units.HumanSize(float64(r.size)) }

// dfVerbose is `df -v`: a table per kind, docker's sections.
func (c *CLI) dfVerbose(du client.DiskUsageResult) error {
	now := time.Now()
	section := func(title, tmpl string, header map[string]string, rows func(l *format.Lister) error) error {
		fmt.Fprintf(c.Out, "%s\n\n", title)
		l, err := format.NewLister(c.Out, tmpl, tmpl, header)
		if err != nil {
			return err
		}
		if err := rows(l); err != nil {
			return err
		}
		if err := l.Flush(); err != nil {
			return err
		}
		fmt.Fprintln(c.Out)
		return nil
	}
	err := section("Images space usage:", "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}", imagesHeader,
		func(l *format.Lister) error {
			for _, img := range du.Images.Items {
				n := imageNames(img)[0]
				if err := l.Row(&imageRow{img: img, repo: n[0], tag: n[1], trunc: true, now: now}); err != nil {
					return err
				}
			}
			return nil
		})
	if err != nil {
		return err
	}
	hdr := map[string]string{"LocalVolumes": "LOCAL VOLUMES"}
	for k, v := range psHeader {
		hdr[k] = v
	}
	hdr["RunningFor"] = "CREATED"
	err = section("Containers space usage:", "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.RunningFor}}\t{{.Status}}\t{{.Names}}", hdr,
		func(l *format.Lister) error {
			for _, ctr := range du.Containers.Items {
				if err := l.Row(dfContainerRow{&psRow{c: ctr, trunc: true, now: now}}); err != nil {
					return err
				}
			}
			return nil
		})
	if err != nil {
		return err
	}
	err = section("Local Volumes space usage:", "table {{.Name}}\t{{.Links}}\t{{.Size}}", map[string]string{"Name": "VOLUME NAME", "Links": "LINKS", "Size": "SIZE"},
		func(l *format.Lister) error {
			for _, v := range du.Volumes.Items {
				r := dfVolumeRow{name: v.Name}
				if v.UsageData != nil {
					r.links, r.size = v.UsageData.RefCount, v.UsageData.Size
				}
				if err := l.Row(r); err != nil {
					return err
				}
			}
			return nil
		})
	if err != nil {
		return err
	}
	fmt.Fprintf(c.Out, "Build cache usage: %s\n\n", units.HumanSize(float64(du.BuildCache.TotalSize)))
	l, err := format.NewLister(c.Out, dfCacheTable, dfCacheTable, dfCacheHeader)
	if err != nil {
		return err
	}
	items := slices.Clone(du.BuildCache.Items)
	// docker's order: never used first, then by last use, then by ID.
	slices.SortStableFunc(items, func(a, b build.CacheRecord) int {
		switch {
		case a.LastUsedAt == nil && b.LastUsedAt == nil:
			return strings.Compare(a.ID, b.ID)
		case a.LastUsedAt == nil:
			return -1
		case b.LastUsedAt == nil:
			return 1
		case a.LastUsedAt.Equal(*b.LastUsedAt):
			return strings.Compare(a.ID, b.ID)
		}
		return a.LastUsedAt.Compare(*b.LastUsedAt)
	})
	for _, r := range items {
		if err := l.Row(dfCacheRow{r, now}); err != nil {
			return err
		}
	}
	return l.Flush()
}

const dfCacheTable = "table {{.ID}}\t{{.CacheType}}\t{{.Size}}\t{{.CreatedSince}}\t{{.LastUsedSince}}\t{{.UsageCount}}\t{{.Shared}}"

var dfCacheHeader = map[string]string{"ID": "CACHE ID", "CacheType": "CACHE TYPE", "Size": "SIZE", "CreatedSince": "CREATED",
	"LastUsedSince": "LAST USED", "UsageCount": "USAGE", "Shared": "SHARED"}

// dfCacheRow is a build cache record in `df -v`, docker's columns.
type dfCacheRow struct {
	r   build.CacheRecord
	now time.Time
}

func (r dfCacheRow) ID() string {
	id := r.r.ID
	if len(id) > 12 {
		id = id[:12]
	}
	if r.r.InUse {
		id += "*"
	}
	return id
}
func (r dfCacheRow) CacheType() string { return r.r.Type }
func (r dfCacheRow) Size() string      { return units.HumanSizeWithPrecision(float64(r.r.Size), 3) }
func (r dfCacheRow) CreatedSince() string {
	return units.HumanDuration(r.now.UTC().Sub(r.r.CreatedAt)) + " ago"
}
func (r dfCacheRow) LastUsedSince() string {
	if r.r.LastUsedAt == nil {
		return ""
	}
	return units.HumanDuration(r.now.UTC().Sub(*r.r.LastUsedAt)) + " ago"
}
func (r dfCacheRow) UsageCount() string { return strconv.Itoa(r.r.UsageCount) }
func (r dfCacheRow) Shared() string     { return strconv.FormatBool(r.r.Shared) }

// systemPruneCommand is docker's system prune: the prune endpoints one by
// one (containers, networks, volumes with --volumes, images, build cache).
func (c *CLI) systemPruneCommand() *cobra.Command {
	var all, force, volumes bool
	var filters []string
	cmd := &cobra.Command{Use: "prune [OPTIONS]", Short: "Remove unused data", Args: c.noArgs()}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "Remove all unused images not just dangling ones")
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	cmd.Flags().BoolVar(&volumes, "volumes", false, "Prune anonymous volumes")
	cmd.Flags().StringArrayVar(&filters, "filter", nil, `Provide filter values (e.g. "label=<key>=<value>")`)
	cmd.RunE = c.action(func(ctx context.Context, _ []string) error {
		f, err := parseFilters(filters)
		if err != nil {
			return &StatusError{Code: 125, Message: err.Error()}
		}
		if !force && !c.confirm(systemPruneWarning(all, volumes, filters)) {
			return nil
		}
		api, err := c.Client()
		if err != nil {
			return err
		}
		var freed uint64
		cr, err := api.ContainerPrune(ctx, client.ContainerPruneOptions{Filters: f})
		if err != nil {
			return c.explain(err)
		}
		freed += cr.Report.SpaceReclaimed
		if len(cr.Report.ContainersDeleted) > 0 {
			fmt.Fprintln(c.Out, "Deleted Containers:\n"+strings.Join(cr.Report.ContainersDeleted, "\n")+"\n")
		}
		nr, err := api.NetworkPrune(ctx, client.NetworkPruneOptions{Filters: f})
		if err != nil {
			return c.explain(err)
		}
		if len(nr.Report.NetworksDeleted) > 0 {
			fmt.Fprintln(c.Out, "Deleted Networks:\n"+strings.Join(nr.Report.NetworksDeleted, "\n")+"\n")
		}
		if volumes {
			vr, err := api.VolumePrune(ctx, client.VolumePruneOptions{Filters: f})
			if err != nil {
				return c.explain(err)
			}
			freed += vr.Report.SpaceReclaimed
			if len(vr.Report.VolumesDeleted) > 0 {
				fmt.Fprintln(c.Out, "Deleted Volumes:\n"+strings.Join(vr.Report.VolumesDeleted, "\n")+"\n")
			}
		}
		imf := f.Clone()
		imf.Add("dangling", strconv.FormatBool(!all))
		ir, err := api.ImagePrune(ctx, client.ImagePruneOptions{Filters: imf})
		if err != nil {
			return c.explain(err)
		}
		freed += ir.Report.SpaceReclaimed
		if report := deletedImages(ir.Report.ImagesDeleted); report != "" {
			fmt.Fprintln(c.Out, report)
		}
		br, err := api.BuildCachePrune(ctx, client.BuildCachePruneOptions{All: all, Filters: f})
		if err != nil {
			return c.explain(err)
		}
		freed += br.Report.SpaceReclaimed
		if len(br.Report.CachesDeleted) > 0 {
			fmt.Fprintln(c.Out, "Deleted build cache objects:\n"+strings.Join(br.Report.CachesDeleted, "\n")+"\n")
		}
		fmt.Fprintln(c.Out, "Total reclaimed space:", units.HumanSize(float64(freed)))
		return nil
	})
	return cmd
}

// systemPruneWarning lists what prune removes, docker's wording.
func systemPruneWarning(all, volumes bool, filters []string) string {
	lines := []string{"all stopped containers", "all networks not used by at least one container"}
	if volumes {
		lines = append(lines, "all anonymous volumes not used by at least one container")
	}
	if all {
		lines = append(lines, "all images without at least one container associated to them", "all build cache")
	} else {
		lines = append(lines, "all dangling images", "unused build cache")
	}
	var b strings.Builder
	b.WriteString("WARNING! This will remove:\n")
	for _, l := range lines {
		b.WriteString("  - " + l + "\n")
	}
	if len(filters) > 0 {
		b.WriteString("\n  Items to be pruned will be filtered with:\n")
		for _, f := range filters {
			b.WriteString("  - " + f + "\n")
		}
	}
	b.WriteString("\nAre you sure you want to continue?")
	return b.String()
}
