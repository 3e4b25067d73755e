// Decoded-image cache for small fixed-size image folders (CIFAR-10 as JPEGs): decoding 60,000
// JPEGs takes seconds, reading their pixels back takes a fraction of one.
//
// File layout (native little-endian):
//   char[8] "PCONVDC\0", u32 version, u32 height, width, channels, u64 count,
//   u64 source_files, source_bytes, source_fingerprint   (FolderIndex: a changed folder = stale)
//   u32 num_classes, per class u32 length + bytes, i32 labels[count], u8 pixels[count*h*w*c] (HWC)
// Written to "<path>.tmp.<pid>" then renamed, so a reader never sees a torn file.
#pragma once

#include <optional>
#include <string>

#include "data/image_folder.h"
#include "data/image_set.h"

namespace pconv::data {

constexpr uint32_t kDecodedCacheVersion = 1;

void write_decoded_cache(const std::string& path, const ImageSet& set, const FolderIndex& source);

// The cached images when `path` exists and was made from `source` as it is now; nullopt when it
// is absent, stale, of another version, or damaged (the caller then rebuilds it).
std::optional<ImageSet> read_decoded_cache(const std::string& path, const FolderIndex& source);

// Decodes every image of the folder with `threads` threads. All images must share one size;
// errors name the file that differs or fails to decode.
ImageSet decode_folder(const FolderIndex& index, int threads);

// Where the cache for a folder goes: <cache_dir>/decoded/<last two path parts>-<path hash>.pcd
std::string decoded_cache_path(const std::string& cache_dir, const std::string& folder);

// read_decoded_cache, else decode_folder + write_decoded_cache (a failed write only warns).
ImageSet load_folder_cached(const FolderIndex& index, const std::string& cache_path);

}  // namespace pconv::data
