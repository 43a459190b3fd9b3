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
  explicit RawFile(const std::string& path, hid_t access = H5P_DEFAULT)
      : id_(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, access)) {}
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

// The object header guard (data/hdf5_header_messages.h) must pass every valid header, in both
// formats (1.6: version 1 headers, symbol-table groups; 1.8: version 2 headers, link messages,
// layout version 4, and more than 8 attributes kept in dense storage): attributes of each
// datatype class h5py writes (integers, floats, fixed and variable-length strings, lists, a
// compound, numpy's bool as an enum, an array, a null dataspace), headers continued in several
// chunks, and datasets contiguous, compact, chunked with filters, with a fill value, a committed
// (shared) datatype, and external storage (names in a local heap). Each reads back as written.
TEST(Hdf5Bounds, ObjectHeaderGuardPassesValidFilesOfEveryKind) {
  ScratchDir dir;
  const std::vector<float> values = {1, 2, 3, 4, 5, 6};
  const hsize_t dims[] = {2, 3};
  for (const bool format_18 : {false, true}) {
    const std::string path = dir / (format_18 ? "v18.h5" : "v16.h5");
    {
      const hid_t access = H5Pcreate(H5P_FILE_ACCESS);
      if (format_18) H5Pset_libver_bounds(access, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
      RawFile f(path, access);
      H5Pclose(access);
      const int64_t number = 7;
      const double real = 0.5;
      const int64_t list[] = {1, 2, 3};
      const char* text = "variable";
      f.attribute("/", "number", H5T_STD_I64LE, {}, &number);
      f.attribute("/", "real", H5T_IEEE_F64LE, {}, &real);
      f.attribute("/", "list", H5T_STD_I64LE, {3}, list);
      const hid_t fixed = fixed_string(5);
      f.attribute("/", "fixed", fixed, {}, "fixed");
      const hid_t variable = H5Tcopy(H5T_C_S1);
      H5Tset_size(variable, H5T_VARIABLE);
      f.attribute("/", "variable", variable, {}, &text);
      struct Pair {
        int32_t a;
        double b;
      } pair{1, 2.0};
      const hid_t compound = H5Tcreate(H5T_COMPOUND, sizeof(Pair));
      H5Tinsert(compound, "a", HOFFSET(Pair, a), H5T_NATIVE_INT32);
      H5Tinsert(compound, "b", HOFFSET(Pair, b), H5T_NATIVE_DOUBLE);
      f.attribute("/", "pair", compound, {}, &pair);
      const hid_t boolean = H5Tenum_create(H5T_NATIVE_INT8);  // numpy's bool, as h5py stores it
      for (int8_t v : {0, 1}) H5Tenum_insert(boolean, v ? "TRUE" : "FALSE", &v);
      const int8_t yes = 1;
      f.attribute("/", "flag", boolean, {}, &yes);
      const hid_t array = H5Tarray_create2(H5T_NATIVE_FLOAT, 2, dims);
      f.attribute("/", "matrix", array, {}, values.data());
      const hid_t null_space = H5Screate(H5S_NULL);
      H5Aclose(H5Acreate2(f.id(), "empty", H5T_NATIVE_INT32, null_space, H5P_DEFAULT, H5P_DEFAULT));
      H5Sclose(null_space);
      for (int i = 0; i < 12; ++i) f.attribute("/", "extra_" + std::to_string(i), H5T_STD_I64LE, {}, &number);
      for (hid_t type : {fixed, variable, compound, boolean, array}) H5Tclose(type);

      const auto dataset = [&](const std::string& name, hid_t type, hid_t create) {
        const hid_t space = H5Screate_simple(2, dims, nullptr);
        const hid_t d = H5Dcreate2(f.id(), name.c_str(), type, space, H5P_DEFAULT, create, H5P_DEFAULT);
        EXPECT_GE(H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), 0) << name;
        H5Dclose(d);
        H5Sclose(space);
      };
      const hid_t create = H5Pcreate(H5P_DATASET_CREATE);
      dataset("contiguous", H5T_IEEE_F32LE, create);
      const float fill = 9;
      H5Pset_fill_value(create, H5T_NATIVE_FLOAT, &fill);
      H5Pset_layout(create, H5D_COMPACT);
      dataset("compact", H5T_IEEE_F32LE, create);
      const hsize_t chunk[] = {1, 3};
      H5Pset_chunk(create, 2, chunk);
      H5Pset_shuffle(create);
      H5Pset_deflate(create, 4);
      dataset("chunked", H5T_IEEE_F32LE, create);
      H5Pclose(create);
      const hid_t committed = H5Tcopy(H5T_IEEE_F64LE);
      H5Tcommit2(f.id(), "float64", committed, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      dataset("shared_type", committed, H5P_DEFAULT);
      H5Tclose(committed);
      const hid_t external = H5Pcreate(H5P_DATASET_CREATE);
      H5Pset_external(external, (dir / "external.bin").c_str(), 0, values.size() * sizeof(float));
      dataset("external", H5T_IEEE_F32LE, external);
      H5Pclose(external);
      f.dataset("group/inner/deep", H5T_IEEE_F32LE, {2});
      const hid_t text_type = fixed_string(6);
      f.attribute("/group/inner", "prompt", text_type, {}, "prompt");
      H5Tclose(text_type);
    }
    const Hdf5File file(path, Hdf5File::Mode::Read);
    EXPECT_EQ(file.read_int("number"), 7) << path;
    EXPECT_EQ(file.read_double("real"), 0.5) << path;
    EXPECT_EQ(file.read_ints("list"), (std::vector<int64_t>{1, 2, 3})) << path;
    EXPECT_EQ(file.read_string("fixed"), "fixed") << path;
    EXPECT_EQ(file.read_string("variable"), "variable") << path;
    for (const char* name : {"pair", "flag", "matrix", "empty", "extra_11"}) EXPECT_TRUE(file.has_attribute(name)) << name;
    EXPECT_EQ(file.datasets(), (std::vector<std::string>{"chunked", "compact", "contiguous", "external", "shared_type"}))
        << path;
    for (const std::string& name : file.datasets())
      EXPECT_EQ(file.read(name).to_vector(), values) << path << " " << name;
    EXPECT_EQ(file.groups(), std::vector<std::string>{"group"}) << path;
    EXPECT_EQ(file.read_string("prompt", "/group/inner"), "prompt") << path;
    EXPECT_EQ(file.read("group/inner/deep").to_vector(), (std::vector<float>{0, 0})) << path;
  }
}

}  // namespace
}  // namespace vdit
