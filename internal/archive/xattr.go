package archive

// CopyXattrs copies the extended attributes of src to dst (neither
// followed if a symlink), overlayfs's own excepted: the builder's COPY
// keeps file capabilities and the like, as docker's does.
func CopyXattrs(src, dst string) error { return copyXattrs(src, dst) }
