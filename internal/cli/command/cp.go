package command

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/docker/go-units"
	"github.com/moby/go-archive"
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/cli/client"
)

// cp is docker cp: the daemon only tars a path out and untars into a
// directory; deciding what the copy means (into a directory, onto a new
// name, the content of "dir/.") is the client's job, with go-archive's
// rules that docker's CLI uses too.

type cpOptions struct {
	followLink, copyUIDGID, quiet bool
	container, src, dst           string
}

func (c *CLI) cpCommand() *cobra.Command {
	var o cpOptions
	cmd := &cobra.Command{
		Use:   "cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n  berth cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH",
		Short: "Copy files/folders between a container and the local filesystem",
		Args:  c.exactArgs(2),
		// "NAME:" for the containers, local files otherwise.
		ValidArgsFunction: func(cmd *cobra.Command, args []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
			if len(args) >= 2 || strings.Contains(prefix, ":") {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			names, _ := c.completeContainers(cmd, args, prefix)
			for i := range names {
				names[i] += ":"
			}
			return names, cobra.ShellCompDirectiveNoSpace | cobra.ShellCompDirectiveDefault
		},
	}
	cmd.Flags().BoolVarP(&o.followLink, "follow-link", "L", false, "Always follow symlinks in SRC_PATH")
	cmd.Flags().BoolVarP(&o.copyUIDGID, "archive", "a", false, "Archive mode (copy all uid/gid information)")
	cmd.Flags().BoolVarP(&o.quiet, "quiet", "q", false, "Suppress progress output during copy. Progress output is automatically suppressed if no terminal is attached")
	cmd.RunE = c.action(func(ctx context.Context, args []string) error {
		if args[0] == "" {
			return errors.New("source can not be empty")
		}
		if args[1] == "" {
			return errors.New("destination can not be empty")
		}
		if !cmd.Flags().Changed("quiet") {
			o.quiet = !isTerminal(c.Out)
		}
		srcCtr, src := splitCpArg(args[0])
		dstCtr, dst := splitCpArg(args[1])
		o.src, o.dst = src, dst
		switch {
		case srcCtr != "" && dstCtr != "":
			return errors.New("copying between containers is not supported")
		case srcCtr != "":
			o.container = srcCtr
			return c.explain(c.copyFrom(ctx, o))
		case dstCtr != "":
			o.container = dstCtr
			return c.explain(c.copyTo(ctx, o))
		}
		return errors.New("must specify at least one container source")
	})
	return cmd
}

// splitCpArg splits CONTAINER:PATH; a local path holding a colon must
// start with "/" or "." to be taken as local (docker's rule).
func splitCpArg(arg string) (ctr, p string) {
	if filepath.IsAbs(arg) {
		return "", arg
	}
	ctr, p, ok := strings.Cut(arg, ":")
	if !ok || strings.HasPrefix(ctr, ".") {
		return "", arg
	}
	return ctr, p
}

// localPath makes p absolute, keeping a trailing "/" or "/." the user
// wrote.
func localPath(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	return archive.PreserveTrailingDotOrSeparator(abs, p), nil
}

func checkOutputPath(p string) error {
	if dir := filepath.Dir(filepath.Clean(p)); dir != "" && dir != "." {
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("invalid output path: directory %q does not exist", dir)
		}
	}
	if fi, err := os.Stat(p); err == nil && !fi.IsDir() && !fi.Mode().IsRegular() {
		return fmt.Errorf("invalid output path: %q must be a directory or a regular file: %w", p, irregular(fi.Mode()))
	}
	return nil
}

func irregular(m fs.FileMode) error {
	if m&fs.ModeDevice != 0 {
		return errors.New("got a device")
	}
	return errors.New("got an irregular file")
}

// countingReader counts the bytes that pass, for the progress and
// summary lines.
type countingReader struct {
	io.ReadCloser
	n atomic.Int64
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	r.n.Add(int64(n))
	return n, err
}

// progress shows "header SIZE" on stderr, when it is a terminal, redrawn
// in place every 75 ms while the count grows; the returned stop erases it.
func (c *CLI) progress(header string, r *countingReader, quiet bool) (stop func()) {
	if quiet || !isTerminal(c.Err) {
		return func() {}
	}
	size := func(n int64) string { return units.HumanSizeWithPrecision(float64(n), 3) }
	fmt.Fprint(c.Err, "\x1b7\x1b[?25l"+header+size(0)) // save the cursor, hide it
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(75 * time.Millisecond)
		defer t.Stop()
		var last int64
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if n := r.n.Load(); n != last {
					last = n
					fmt.Fprint(c.Err, "\x1b8\x1b[2K"+header+size(n))
				}
			}
		}
	}()
	return func() {
		close(done)
		<-finished
		fmt.Fprint(c.Err, "\x1b8\x1b[2K\x1b[?25h") // back, erase, show the cursor
	}
}

func (c *CLI) copySummary(content, sent int64, dest string) {
	size := func(n int64) string { return units.HumanSizeWithPrecision(float64(n), 3) }
	if content != sent {
		fmt.Fprintf(c.Err, "Successfully copied %s (transferred %s) to %s\n", size(content), size(sent), dest)
		return
	}
	fmt.Fprintf(c.Err, "Successfully copied %s to %s\n", size(content), dest)
}

func (c *CLI) copyFrom(ctx context.Context, o cpOptions) error {
	dst := o.dst
	if dst != "-" {
		var err error
		if dst, err = localPath(dst); err != nil {
			return err
		}
		if err := checkOutputPath(dst); err != nil {
			return err
		}
	}
	api, err := c.Client()
	if err != nil {
		return err
	}
	src, rebase := o.src, ""
	if o.followLink {
		st, err := api.ContainerStatPath(ctx, o.container, client.ContainerStatPathOptions{Path: src})
		if err == nil && st.Stat.Mode&os.ModeSymlink != 0 {
			target := st.Stat.LinkTarget
			if !filepath.IsAbs(target) {
				parent, _ := archive.SplitPathDirEntry(src)
				target = filepath.Join(parent, target)
			}
			src, rebase = archive.GetRebaseName(src, target)
		}
	}
	res, err := api.CopyFromContainer(ctx, o.container, client.CopyFromContainerOptions{SourcePath: src})
	if err != nil {
		return err
	}
	content := &countingReader{ReadCloser: res.Content}
	defer content.Close()
	if dst == "-" {
		_, err := io.Copy(c.Out, content)
		return err
	}
	stop := c.progress("Copying from container - ", content, o.quiet)
	info := archive.CopyInfo{Path: src, Exists: true, IsDir: res.Stat.Mode.IsDir(), RebaseName: rebase}
	var in io.Reader = content
	if rebase != "" {
		_, base := archive.SplitPathDirEntry(src)
		in = archive.RebaseArchiveEntries(content, base, rebase)
	}
	err = archive.CopyTo(in, info, dst)
	stop()
	if err != nil {
		return err
	}
	if !o.quiet {
		size := content.n.Load()
		if !res.Stat.Mode.IsDir() {
			size = res.Stat.Size
		}
		c.copySummary(size, content.n.Load(), dst)
	}
	return nil
}

func (c *CLI) copyTo(ctx context.Context, o cpOptions) error {
	src, dst := o.src, o.dst
	if src != "-" {
		var err error
		if src, err = localPath(src); err != nil {
			return err
		}
	}
	api, err := c.Client()
	if err != nil {
		return err
	}
	// What the destination is decides how the archive is shaped; a
	// missing one is fine (its parent is used, and the daemon refuses a
	// copy that does not fit).
	dstInfo := archive.CopyInfo{Path: dst}
	if st, err := api.ContainerStatPath(ctx, o.container, client.ContainerStatPathOptions{Path: dst}); err == nil {
		if st.Stat.Mode&os.ModeSymlink != 0 {
			target := st.Stat.LinkTarget
			if !filepath.IsAbs(target) {
				parent, _ := archive.SplitPathDirEntry(dst)
				target = filepath.Join(parent, target)
			}
			dstInfo.Path = target
			st, err = api.ContainerStatPath(ctx, o.container, client.ContainerStatPathOptions{Path: target})
		}
		if err == nil {
			if m := st.Stat.Mode; !m.IsDir() && !m.IsRegular() && m&(fs.ModeDevice|fs.ModeIrregular) != 0 {
				return fmt.Errorf(`destination "%s:%s" must be a directory or a regular file: %w`, o.container, dst, irregular(m))
			}
			dstInfo.Exists, dstInfo.IsDir = true, st.Stat.Mode.IsDir()
		}
	}

	var content io.ReadCloser
	var size int64 = -1
	target := dstInfo.Path
	if src == "-" {
		if !dstInfo.IsDir {
			return fmt.Errorf(`destination "%s:%s" must be a directory`, o.container, dst)
		}
		content = io.NopCloser(c.In)
	} else {
		srcInfo, err := archive.CopyInfoSourcePath(src, o.followLink)
		if err != nil {
			return err
		}
		size = contentSize(srcInfo.Path)
		tarred, err := archive.TarResource(srcInfo)
		if err != nil {
			return err
		}
		defer tarred.Close()
		dir, prepared, err := archive.PrepareArchiveCopy(tarred, srcInfo, dstInfo)
		if err != nil {
			return err
		}
		defer prepared.Close()
		target, content = dir, prepared
	}
	counted := &countingReader{ReadCloser: content}
	stop := c.progress("Copying to container - ", counted, o.quiet)
	_, err = api.CopyToContainer(ctx, o.container, client.CopyToContainerOptions{
		DestinationPath: target, Content: counted, CopyUIDGID: o.copyUIDGID,
	})
	stop()
	if err == nil && !o.quiet {
		if size < 0 {
			size = counted.n.Load()
		}
		c.copySummary(size, counted.n.Load(), o.container+":"+dstInfo.Path)
	}
	return err
}

// contentSize is the size of the regular files at p (docker's summary
// counts content, not tar bytes); -1 if unknown.
func contentSize(p string) int64 {
	fi, err := os.Lstat(p)
	if err != nil {
		return -1
	}
	if !fi.IsDir() {
		if fi.Mode().IsRegular() {
			return fi.Size()
		}
		return 0
	}
	var total int64
	err = filepath.WalkDir(p, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			total += info.Size()
		}
		return nil
	})
	if err != nil {
		return -1
	}
	return total
}
