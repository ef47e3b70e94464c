package api

import "time"

// Image is a disk image in the daemon's catalog. VM disks that name it
// are qcow2 overlays on it (or full copies with clone: full).
type Image struct {
	Name        string    `json:"name"`
	Format      string    `json:"format" doc:"qcow2 or raw."`
	VirtualSize Size      `json:"virtualSize"`
	ActualSize  Size      `json:"actualSize" doc:"Space the file takes on the host."`
	Path        string    `json:"path"`
	SHA256      string    `json:"sha256,omitempty" doc:"Of the file as imported."`
	Source      string    `json:"source,omitempty" doc:"Where it came from: a file, URL or build recipe."`
	Backing     []string  `json:"backingChain,omitempty" doc:"Backing files below the image, nearest first."`
	Boot        *Boot     `json:"boot,omitempty" doc:"Direct kernel boot files that come with the image (built images)."`
	UsedBy      []string  `json:"usedBy,omitempty" doc:"VMs with a disk on this image."`
	CreatedAt   time.Time `json:"createdAt,omitzero"`
}

// ImageList is the answer to GET /v1/images.
type ImageList struct {
	Images []Image `json:"images"`
}

// ImageImport imports an image from a URL or a file on the daemon's host.
type ImageImport struct {
	Name   string `json:"name" doc:"Catalog name." example:"debian-12"`
	URL    string `json:"url,omitempty" doc:"http:// or https:// URL of a qcow2 or raw image."`
	Path   string `json:"path,omitempty" doc:"Absolute path of an image file on the daemon's host (copied)."`
	SHA256 string `json:"sha256,omitempty" doc:"Expected hex SHA-256 of the file."`
	Boot   *Boot  `json:"boot,omitempty" doc:"Kernel and initrd (files on the daemon's host, copied) and cmdline for direct kernel boot."`
}

// ImageConvert converts a catalog image to another format, as a new image.
type ImageConvert struct {
	Format string `json:"format" enum:"qcow2,raw" doc:"Target format."`
	Name   string `json:"name" doc:"Name of the converted image."`
}

// ImageBuild builds an image from a distribution's packages.
type ImageBuild struct {
	Name   string `json:"name" example:"debian-12"`
	Distro string `json:"distro" enum:"debian" doc:"Only debian for now."`
	Suite  string `json:"suite,omitempty" doc:"Debian suite (default bookworm)."`
	Size   Size   `json:"size,omitempty" doc:"Virtual size of the image (default 4GiB)."`
	Mirror string `json:"mirror,omitempty" doc:"Debian mirror URL (default http://deb.debian.org/debian)."`
}
