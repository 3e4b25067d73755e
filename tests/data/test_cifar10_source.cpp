// Finding CIFAR-10: layout detection, the cache, tarball candidates, checksum and extraction.
#include <gtest/gtest.h>

#include "error_of.h"

#include <functional>

#include <cstdlib>
#include <filesystem>

#include "core/error.h"
#include "data/cifar10_source.h"
#include "data/shell.h"
#include "data_test_util.h"

namespace fs = std::filesystem;

namespace pconv::data {
namespace {

using testing::ScratchDir;

TEST(Cifar10Source, DigestsOfAnAwkwardFileName) {
  ScratchDir d("digest");
  const std::string path = d / "it's a file.bin";
  testing::write_bytes(path, "abc");
  EXPECT_EQ(file_digest(path, "sha256sum"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(file_digest(path, "md5sum"), "900150983cd24fb0d6963f7d28e17f72");
  EXPECT_THROW(file_digest(d / "missing"), Error);
}

TEST(Cifar10Source, WrongChecksumIsRefusedAndNothingIsExtracted) {
  ScratchDir d("bad-tarball");
  testing::write_bytes(d / "cifar10-jpeg.tar.gz", "not the archive");
  const std::string msg =
      error_of([&] { extract_cifar10_tarball(d / "cifar10-jpeg.tar.gz", d / "cache"); });
  EXPECT_NE(msg.find("cifar10-jpeg.tar.gz"), std::string::npos) << msg;
  EXPECT_NE(msg.find("sha256"), std::string::npos) << msg;
  EXPECT_FALSE(fs::exists(d / "cache/cifar10-jpeg"));
}

TEST(Cifar10Source, DetectsLayoutsAndExplainsAMiss) {
  ScratchDir d("layout");
  fs::create_directories(d / "a/cifar10-jpeg/train");
  auto loc = detect_cifar10_layout(d / "a", "train");
  EXPECT_EQ(loc.layout, CifarLocation::Layout::JpegFolders);
  EXPECT_EQ(loc.dir, d / "a/cifar10-jpeg");
  for (const char* f : {"data_batch_1.bin", "test_batch.bin"})
    testing::write_bytes(d / "b" + "/" + f, "");
  loc = detect_cifar10_layout(d / "b", "train");
  EXPECT_EQ(loc.layout, CifarLocation::Layout::Binary);
  const std::string msg = error_of([&] { detect_cifar10_layout(d / "empty", "train"); });
  EXPECT_NE(msg.find(d / "empty"), std::string::npos) << msg;
  EXPECT_NE(msg.find("data_batch_1..5.bin"), std::string::npos) << msg;
}

TEST(Cifar10Source, AnExtractedCopyInTheCacheIsUsedAsIs) {
  ScratchDir d("cached-copy");
  fs::create_directories(d / "cifar10-jpeg/train");
  fs::create_directories(d / "cifar10-jpeg/test");
  DataConfig cfg;
  cfg.cache_dir = d.path();
  const CifarLocation loc = locate_cifar10(cfg);
  EXPECT_EQ(loc.layout, CifarLocation::Layout::JpegFolders);
  EXPECT_EQ(loc.dir, d / "cifar10-jpeg");
}

TEST(Cifar10Source, SharedDirFromTheEnvironmentComesFirst) {
  ::setenv("PCONV_SHARED_DIR", "/somewhere/shared", 1);
  const auto c = cifar10_tarball_candidates();
  ::unsetenv("PCONV_SHARED_DIR");
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0], "/somewhere/shared/datasets/cifar10-jpeg.tar.gz");
  EXPECT_NE(c[1].find("/../shared/datasets/cifar10-jpeg.tar.gz"), std::string::npos);
}

// The extraction path on a small archive made here (the real 60,000-file one is exercised by
// test_real_data on a fresh cache; re-extracting it per run would cost the shared disk).
TEST(Cifar10Source, ExtractionGoesThroughATemporaryFolder) {
  ScratchDir d("extract");
  testing::write_bytes(d / "src/top/train/a.txt", "x");
  ASSERT_EQ(run_shell("tar -czf " + shell_quote(d / "small.tar.gz") + " -C " +
                      shell_quote(d / "src") + " top"),
            0);
  auto no_leftovers = [&] {
    for (const auto& e : fs::directory_iterator(d / "cache"))
      EXPECT_EQ(e.path().filename().string().rfind(".extract", 0), std::string::npos)
          << "left behind: " << e.path();
  };
  // A rejected archive leaves nothing that looks complete.
  const std::string msg = error_of([&] {
    extract_into_cache(d / "small.tar.gz", d / "cache", "top",
                       [](const std::string& dir) { throw Error(dir + ": wrong counts"); });
  });
  EXPECT_NE(msg.find("wrong counts"), std::string::npos) << msg;
  EXPECT_FALSE(fs::exists(d / "cache/top"));
  no_leftovers();

  std::string seen;
  const std::string dir = extract_into_cache(d / "small.tar.gz", d / "cache", "top",
                                             [&](const std::string& tmp) { seen = tmp; });
  EXPECT_EQ(dir, d / "cache/top");
  EXPECT_TRUE(fs::is_regular_file(dir + "/train/a.txt"));
  EXPECT_NE(seen, dir) << "verified in place instead of in a temporary folder";
  no_leftovers();

  testing::write_bytes(d / "broken.tar.gz", "not gzip");
  const std::string broken = error_of([&] {
    extract_into_cache(d / "broken.tar.gz", d / "cache", "x", [](const std::string&) {});
  });
  EXPECT_NE(broken.find("broken.tar.gz"), std::string::npos) << broken;
  no_leftovers();
}

}  // namespace
}  // namespace pconv::data
