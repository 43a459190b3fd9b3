// HDF5 reads are bounded: files made with the HDF5 C API the way other tools make them (an
// h5py array of strings as an attribute, integer datasets, deep ranks, absurd extents) are
// refused with an error naming the file, the object and what was expected, before anything
// is allocated from what the file claims.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <hdf5.h>

#include <algorithm>
#include <vector>

#include "autograd/check.h"
#include "data/hdf5_file.h"
#include "data/latent_dataset.h"
#include "tests/fixtures.h"

namespace vdit {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using testing::error_of;
using testing::ScratchDir;

// An HDF5 file written through the C API, closed when the object goes.
class RawFile {
 public:
  explicit RawFile(const std::string& path) : id_(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT)) {}
  ~RawFile() { H5Fclose(id_); }
  hid_t id() const { return id_; }

  // A dataset of `type` and extents `dims` at `name` (intermediate groups created), filled
  // with zeros unless `chunk` asks for a chunked dataset left unwritten.
  void dataset(const std::string& name, hid_t type, const std::vector<hsize_t>& dims, bool chunk = false) {
    const hid_t space = dims.empty() ? H5Screate(H5S_SCALAR) : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
    const hid_t links = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(links, 1);
    const hid_t create = H5Pcreate(H5P_DATASET_CREATE);
    if (chunk) {
      const std::vector<hsize_t> ones(dims.size(), 1);
      H5Pset_chunk(create, static_cast<int>(ones.size()), ones.data());
    }
    const hid_t d = H5Dcreate2(id_, name.c_str(), type, space, links, create, H5P_DEFAULT);
    EXPECT_GE(d, 0) << name;
    if (!chunk) {
      hsize_t count = 1;
      for (hsize_t n : dims) count *= n;
      std::vector<char> zeros(count * H5Tget_size(type), 0);
      EXPECT_GE(H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, zeros.data()), 0) << name;
    }
    H5Dclose(d);
    H5Pclose(create);
    H5Pclose(links);
    H5Sclose(space);
  }

  // Attribute `name` of `object` with `dims` values of `type` taken from `data`.
  void attribute(const std::string& object, const std::string& name, hid_t type, const std::vector<hsize_t>& dims,
                 const void* data) {
    const hid_t space = dims.empty() ? H5Screate(H5S_SCALAR) : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
    const hid_t a = H5Acreate_by_name(id_, object.c_str(), name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    EXPECT_GE(a, 0) << name;
    EXPECT_GE(H5Awrite(a, type, data), 0) << name;
    H5Aclose(a);
    H5Sclose(space);
  }

 private:
  hid_t id_;
};

// A fixed-length string type of `size` bytes, as numpy's S<size> dtype is stored.
hid_t fixed_string(size_t size) {
  const hid_t type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, size);
  return type;
}

// Issue 12's heap corruption: h5py's g.attrs['prompt'] = np.array([b'a' * 40] * 64) stores
// 64 strings of 40 bytes; the reader read them all into room for one.
TEST(Hdf5Bounds, PromptHoldingAnArrayOfStringsIsAnErrorNotACorruptHeap) {
  ScratchDir dir;
  {
    RawFile f(dir / "d.h5");
    f.dataset("/sample_000000/latents", H5T_IEEE_F32LE, {2, 1, 2, 2});
    f.dataset("/sample_000000/context", H5T_IEEE_F32LE, {3, 4});
    const std::string prompts(64 * 40, 'a');
    const hid_t type = fixed_string(40);
    f.attribute("/sample_000000", "prompt", type, {64}, prompts.data());
    H5Tclose(type);
  }
  const LatentDataset data = LatentDataset::open({dir / "d.h5"});
  EXPECT_THAT(error_of([&] { data.read(0); }),
              AllOf(HasSubstr("d.h5: attribute 'prompt' of '/sample_000000' has shape [64]"),
                    HasSubstr("expected a single value")));
}

TEST(Hdf5Bounds, VariableLengthStringArrayIsRefusedToo) {
  ScratchDir dir;
  {
    RawFile f(dir / "a.h5");
    const char* names[] = {"one", "two"};
    const hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, H5T_VARIABLE);
    f.attribute("/", "model_identity", type, {2}, names);
    H5Tclose(type);
  }
  EXPECT_THAT(error_of([&] { Hdf5File(dir / "a.h5", Hdf5File::Mode::Read).read_string("model_identity"); }),
              HasSubstr("a.h5: attribute 'model_identity' has shape [2], expected a single value"));
}

TEST(Hdf5Bounds, ScalarAttributesMustHoldOneNumberOfANumericClass) {
  ScratchDir dir;
  {
    RawFile f(dir / "o.h5");
    const int64_t three[] = {1, 2, 3};
    f.attribute("/", "steps", H5T_NATIVE_INT64, {3}, three);
    const hid_t type = fixed_string(5);
    f.attribute("/", "kind", type, {}, "adamw");
    f.attribute("/", "lr", type, {}, "0.001");
    H5Tclose(type);
    std::vector<int64_t> many(5000, 1);
    f.attribute("/", "patch_size", H5T_NATIVE_INT64, {5000}, many.data());
  }
  const Hdf5File file(dir / "o.h5", Hdf5File::Mode::Read);
  EXPECT_THAT(error_of([&] { file.read_int("steps"); }),
              HasSubstr("o.h5: attribute 'steps' has shape [3], expected a single value"));
  EXPECT_THAT(error_of([&] { file.read_double("lr"); }), HasSubstr("o.h5: attribute 'lr' is string, expected a number"));
  EXPECT_THAT(error_of([&] { file.read_ints("patch_size"); }),
              HasSubstr("o.h5: attribute 'patch_size' has shape [5000], expected a list of at most 1024 values"));
  EXPECT_EQ(file.read_string("kind"), "adamw");
}

TEST(Hdf5Bounds, DatasetOfTheWrongClassIsRefused) {
  ScratchDir dir;
  {
    RawFile f(dir / "m.h5");
    f.dataset("blocks.0.ffn.0.weight", H5T_STD_I32LE, {2, 3});
    f.dataset("timestep", H5T_STD_I64LE, {});
    f.dataset("half", H5T_IEEE_F64LE, {2});
  }
  const Hdf5File file(dir / "m.h5", Hdf5File::Mode::Read);
  EXPECT_THAT(error_of([&] { file.read("blocks.0.ffn.0.weight"); }),
              HasSubstr("m.h5: dataset 'blocks.0.ffn.0.weight' is integer, expected floating point"));
  EXPECT_EQ(file.read("half").shape(), Shape{2});       // any float width converts
  EXPECT_EQ(file.read_number("timestep"), 0.0);        // a number may be an integer
  EXPECT_THAT(error_of([&] { file.read_number("half"); }),
              HasSubstr("m.h5: dataset 'half' has shape [2], expected a single number"));
}

TEST(Hdf5Bounds, RankAndExtentsAreCheckedBeforeAllocating) {
  ScratchDir dir;
  {
    RawFile f(dir / "x.h5");
    f.dataset("deep", H5T_IEEE_F32LE, std::vector<hsize_t>(9, 1));
    // 2^62 float32 values claimed by a chunked dataset that stores nothing: a read must not
    // try to allocate 16 EiB (or wrap the byte count around to a small buffer).
    f.dataset("huge", H5T_IEEE_F32LE, {hsize_t{1} << 31, hsize_t{1} << 31}, /*chunk=*/true);
  }
  const Hdf5File file(dir / "x.h5", Hdf5File::Mode::Read);
  EXPECT_THAT(error_of([&] { file.read("deep"); }), HasSubstr("x.h5: dataset 'deep' has rank 9, expected at most 8"));
  EXPECT_THAT(error_of([&] { file.shape("deep"); }), HasSubstr("has rank 9"));
  EXPECT_THAT(error_of([&] { file.read("huge"); }),
              AllOf(HasSubstr("x.h5: dataset 'huge' has extents [2147483648, 2147483648]"),
                    HasSubstr("more than this machine's memory")));
}

TEST(Hdf5Bounds, NullDataspaceHoldsNoData) {
  ScratchDir dir;
  {
    RawFile f(dir / "n.h5");
    const hid_t space = H5Screate(H5S_NULL);
    H5Dclose(H5Dcreate2(f.id(), "latents", H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    H5Sclose(space);
  }
  EXPECT_THAT(error_of([&] { Hdf5File(dir / "n.h5", Hdf5File::Mode::Read).read("latents"); }),
              HasSubstr("n.h5: dataset 'latents' holds no data"));
}

// The link-name guard (data/hdf5_link_heap.h) must pass every valid old-style group: one whose
// B-tree has split into several levels, whose heap has free blocks left by deleted links (their
// bytes are old names, not NULs) and nested groups; and a 1.8-format file, whose groups hold
// link messages and are left to HDF5.
TEST(Hdf5Bounds, LinkNameGuardPassesValidGroupsWithDeletedLinksAndDeepBTrees) {
  ScratchDir dir;
  for (const bool format_18 : {false, true}) {
    const std::string path = dir / (format_18 ? "v18.h5" : "v10.h5");
    std::vector<std::string> kept;
    {
      const hid_t access = H5Pcreate(H5P_FILE_ACCESS);
      if (format_18) H5Pset_libver_bounds(access, H5F_LIBVER_V18, H5F_LIBVER_V18);
      const hid_t group_create = H5Pcreate(H5P_GROUP_CREATE);
      const hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, access);
      const hid_t group = H5Gcreate2(file, "samples", H5P_DEFAULT, group_create, H5P_DEFAULT);
      H5Gclose(H5Gcreate2(group, "inner", H5P_DEFAULT, group_create, H5P_DEFAULT));
      for (int i = 0; i < 300; ++i) {
        const std::string name = std::string(1 + i % 37, 'n') + std::to_string(i);
        H5Gclose(H5Gcreate2(group, name.c_str(), H5P_DEFAULT, group_create, H5P_DEFAULT));
        if (i % 3 == 0) H5Ldelete(group, name.c_str(), H5P_DEFAULT);
        else kept.push_back(name);
      }
      kept.push_back("inner");
      H5Gclose(group);
      H5Fclose(file);
      H5Pclose(group_create);
      H5Pclose(access);
    }
    std::sort(kept.begin(), kept.end());
    const Hdf5File file(path, Hdf5File::Mode::Read);
    EXPECT_EQ(file.groups("samples"), kept) << path;
    EXPECT_TRUE(file.groups("samples/inner").empty()) << path;
    EXPECT_TRUE(file.has("samples/" + kept.front())) << path;
  }
}

}  // namespace
}  // namespace vdit
