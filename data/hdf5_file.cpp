#include "data/hdf5_file.h"

#include <hdf5.h>
#include <unistd.h>

#include <algorithm>

#include "autograd/check.h"
#include "data/atomic_file.h"
#include "data/hdf5_header_messages.h"
#include "data/hdf5_link_heap.h"
#include "data/hdf5_raw_file.h"

namespace vdit {

namespace {

// Closes an HDF5 handle when it leaves scope.
struct Handle {
  hid_t id;
  herr_t (*close)(hid_t);
  Handle(hid_t i, herr_t (*c)(hid_t)) : id(i), close(c) {}
  ~Handle() {
    if (id >= 0) close(id);
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  operator hid_t() const { return id; }
};

// A file whose close failed (a full disk while HDF5 flushes it) stays in HDF5's table, and the
// library's own cleanup at exit crashes on it; vditkit closes every file it writes itself.
[[maybe_unused]] const bool kNoCleanupAtExit = H5dont_atexit() >= 0;

// HDF5 prints a stack of errors to stderr by default; ours name the file and object instead.
void silence_hdf5() {
  static const bool once = [] { return H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr) >= 0; }();
  (void)once;
}

// The most axes a vditkit array has is 5 (a patch embedding); more is a malformed file.
constexpr int kMaxRank = 8;
// Attributes are small: a config list, a name, a JSON list of sink positions.
constexpr hssize_t kMaxAttributeValues = 1024;
constexpr size_t kMaxStringBytes = size_t{16} << 20;

std::string dims_text(const std::vector<hsize_t>& dims) {
  std::string text = "[";
  for (size_t i = 0; i < dims.size(); ++i) text += (i ? ", " : "") + std::to_string(dims[i]);
  return text + "]";
}

// The extents of `space`, checked before anything is allocated from them: a scalar or simple
// dataspace (not a null one), at most kMaxRank axes, and an element count that fits int64.
Shape checked_extents(hid_t space, const std::string& where) {
  const H5S_class_t cls = H5Sget_simple_extent_type(space);
  VDIT_CHECK(cls == H5S_SCALAR || cls == H5S_SIMPLE, where << " holds no data (a null or unreadable dataspace)");
  const int rank = H5Sget_simple_extent_ndims(space);
  VDIT_CHECK(rank >= 0 && rank <= kMaxRank, where << " has rank " << rank << ", expected at most " << kMaxRank);
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  VDIT_CHECK(H5Sget_simple_extent_dims(space, dims.data(), nullptr) == rank, where << ": unreadable extents");
  Shape shape;
  int64_t count = 1;
  for (hsize_t d : dims) {
    VDIT_CHECK(d <= static_cast<hsize_t>(INT64_MAX) && !__builtin_mul_overflow(count, static_cast<int64_t>(d), &count),
               where << " has extents " << dims_text(dims) << " whose element count overflows");
    shape.push_back(static_cast<int64_t>(d));
  }
  return shape;
}

// Bytes of physical memory: a dataset asking for more cannot be meant for this machine.
uint64_t physical_memory() {
  return static_cast<uint64_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<uint64_t>(sysconf(_SC_PAGE_SIZE));
}

const char* class_name(H5T_class_t cls) {
  switch (cls) {
    case H5T_INTEGER: return "integer";
    case H5T_FLOAT: return "floating point";
    case H5T_STRING: return "string";
    case H5T_COMPOUND: return "compound";
    case H5T_ARRAY: return "array";
    case H5T_VLEN: return "variable-length";
    case H5T_ENUM: return "enum";
    default: return "another class";
  }
}

// "/" for a top-level name ("a" or "/a"), else the path up to the last '/'.
std::string parent_group(const std::string& name) {
  const size_t slash = name.find_last_of('/');
  return slash == std::string::npos || slash == 0 ? "/" : name.substr(0, slash);
}

// "/a/b" for "a/b": the one spelling of a path the checked sets hold.
std::string absolute(const std::string& name) { return name.empty() || name[0] != '/' ? "/" + name : name; }

// Where a guard's error is, for its message.
std::string group_label(const std::string& group) { return "group '" + group + "'"; }

}  // namespace

Hdf5File::Hdf5File(const std::string& path, Mode mode) : path_(path), reading_(mode == Mode::Read) {
  silence_hdf5();
  if (mode == Mode::Read) {
    VDIT_CHECK(H5Fis_hdf5(path.c_str()) > 0, path << ": not a readable HDF5 file");
    // H5Fopen loads the root group's header and the superblock extension's: checked first.
    raw_ = std::make_unique<const Hdf5RawFile>(path);
    if (raw_->defined(raw_->extension_header()))
      check_object_header(*raw_, raw_->extension_header(), "the superblock extension");
    check_link_name_heap(*raw_, check_object_header(*raw_, raw_->root_header(), group_label("/")), group_label("/"));
    checked_groups_.insert("/");
    id_ = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  } else {
    id_ = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  }
  VDIT_CHECK(id_ >= 0, path << ": cannot " << (mode == Mode::Read ? "open" : "create") << " HDF5 file");
}

Hdf5File::~Hdf5File() {
  if (id_ >= 0) H5Fclose(id_);
}

bool Hdf5File::has(const std::string& name) const {
  // Check each prefix: H5Lexists fails rather than answers when an intermediate group is absent.
  for (size_t pos = name.find('/', 1); ; pos = name.find('/', pos + 1)) {
    const std::string prefix = name.substr(0, pos);
    if (!prefix.empty() && prefix != "/") {
      check_names_along(parent_group(prefix));
      if (H5Lexists(id_, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    }
    if (pos == std::string::npos) return true;
  }
}

void Hdf5File::check_names_along(const std::string& name) const {
  const std::string group = absolute(name);
  if (!reading_ || checked_groups_.count(group)) return;  // the root is checked as the file opens
  check_names_along(parent_group(group));
  VDIT_CHECK(H5Lexists(id_, group.c_str(), H5P_DEFAULT) > 0, path_ << ": no group '" << group << "'");
  check_link_name_heap(*raw_, check_object_header(*raw_, link_address(group), group_label(group)), group_label(group));
  checked_headers_.insert(group);
  Handle g(H5Gopen2(id_, group.c_str(), H5P_DEFAULT), H5Gclose);
  VDIT_CHECK(g >= 0, path_ << ": '" << group << "' is not a group");
  checked_groups_.insert(group);
}

void Hdf5File::check_header_of(const std::string& name) const {
  const std::string object = absolute(name);
  if (!reading_ || checked_headers_.count(object)) return;
  check_object_header(*raw_, link_address(object), "object '" + object + "'");
  checked_headers_.insert(object);
}

uint64_t Hdf5File::link_address(const std::string& name) const {
  H5L_info_t link;
  VDIT_CHECK(H5Lget_info(id_, name.c_str(), &link, H5P_DEFAULT) >= 0, path_ << ": unreadable link '" << name << "'");
  VDIT_CHECK(link.type == H5L_TYPE_HARD,
             path_ << ": '" << name << "' is a soft or external link, which vditkit does not follow");
  return link.u.address;
}

namespace {

// Names of the hard links directly inside `group`, sorted: the objects the group holds (soft
// and external links are not followed).
std::vector<std::string> hard_links(hid_t file, const std::string& path, const std::string& group) {
  Handle g(H5Gopen2(file, group.c_str(), H5P_DEFAULT), H5Gclose);
  VDIT_CHECK(g >= 0, path << ": no group '" << group << "'");
  std::vector<std::string> names;
  H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, nullptr,
             [](hid_t, const char* name, const H5L_info_t* link, void* out) -> herr_t {
               if (link->type == H5L_TYPE_HARD) static_cast<std::vector<std::string>*>(out)->push_back(name);
               return 0;
             },
             &names);
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace

std::vector<std::string> Hdf5File::children(const std::string& group, int type) const {
  check_names_along(group);
  std::vector<std::string> names;
  for (const std::string& name : hard_links(id_, path_, group)) {
    const std::string object = (absolute(group) == "/" ? "" : absolute(group)) + "/" + name;
    check_header_of(object);  // H5Oget_info loads it
    H5O_info_t info;
    if (H5Oget_info_by_name2(id_, object.c_str(), &info, H5O_INFO_BASIC, H5P_DEFAULT) >= 0 && info.type == type)
      names.push_back(name);
  }
  return names;
}

std::vector<std::string> Hdf5File::datasets(const std::string& group) const { return children(group, H5O_TYPE_DATASET); }

std::vector<std::string> Hdf5File::groups(const std::string& group) const { return children(group, H5O_TYPE_GROUP); }

hid_t Hdf5File::open_dataset(const std::string& name) const {
  VDIT_CHECK(has(name), path_ << ": no dataset '" << name << "'");
  check_header_of(name);
  const hid_t d = H5Dopen2(id_, name.c_str(), H5P_DEFAULT);
  VDIT_CHECK(d >= 0, path_ << ": '" << name << "' is not a dataset");
  return d;
}

namespace {

// Contiguous and compact data are stored whole (in the file, or in the object header); less
// means a truncated, never-written or corrupt dataset. HDF5 1.10 does not check this for
// compact data: one claiming more than it holds made H5Dread copy from a null buffer
// (found by fuzz/fuzz_latent_dataset.cpp).
void check_stored_whole(hid_t d, const std::string& where, const Shape& shape, uint64_t bytes) {
  Handle plist(H5Dget_create_plist(d), H5Pclose);
  const H5D_layout_t layout = H5Pget_layout(plist);
  VDIT_CHECK((layout != H5D_CONTIGUOUS && layout != H5D_COMPACT) || H5Pget_external_count(plist) > 0 ||
                 H5Dget_storage_size(d) == bytes,
             where << " has extents " << to_string(shape) << " (" << bytes << " bytes) but stores "
                   << H5Dget_storage_size(d) << " bytes");
}

}  // namespace

Shape Hdf5File::shape(const std::string& name) const {
  Handle d(open_dataset(name), H5Dclose);
  Handle space(H5Dget_space(d), H5Sclose);
  return checked_extents(space, path_ + ": dataset '" + name + "'");
}

Tensor Hdf5File::read(const std::string& name) const { return read_as_float32(name, false); }

Tensor Hdf5File::read_numbers(const std::string& name) const { return read_as_float32(name, true); }

Tensor Hdf5File::read_as_float32(const std::string& name, bool integers_too) const {
  const std::string where = path_ + ": dataset '" + name + "'";
  Handle d(open_dataset(name), H5Dclose);
  Handle type(H5Dget_type(d), H5Tclose);
  const H5T_class_t cls = H5Tget_class(type);
  VDIT_CHECK(cls == H5T_FLOAT || (integers_too && cls == H5T_INTEGER),
             where << " is " << class_name(cls) << ", expected " << (integers_too ? "numbers" : "floating point"));
  Handle space(H5Dget_space(d), H5Sclose);
  const Shape shape = checked_extents(space, where);
  const uint64_t count = static_cast<uint64_t>(numel(shape));
  VDIT_CHECK(count <= physical_memory() / sizeof(float),
             where << " has extents " << to_string(shape) << ": " << count
                   << " float32 values, more than this machine's memory holds");
  check_stored_whole(d, where, shape, count * H5Tget_size(type));  // no overflow: count is bounded above
  Tensor out = Tensor::empty(shape);
  VDIT_CHECK(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()) >= 0,
             path_ << ": cannot read dataset '" << name << "'");
  return out;
}

double Hdf5File::read_number(const std::string& name) const {
  const std::string where = path_ + ": dataset '" + name + "'";
  Handle d(open_dataset(name), H5Dclose);
  Handle type(H5Dget_type(d), H5Tclose);
  const H5T_class_t cls = H5Tget_class(type);
  VDIT_CHECK(cls == H5T_FLOAT || cls == H5T_INTEGER, where << " is " << class_name(cls) << ", expected a number");
  Handle space(H5Dget_space(d), H5Sclose);
  const Shape shape = checked_extents(space, where);
  VDIT_CHECK(numel(shape) == 1, where << " has shape " << to_string(shape) << ", expected a single number");
  check_stored_whole(d, where, shape, H5Tget_size(type));
  double value = 0.0;
  VDIT_CHECK(H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, &value) >= 0,
             path_ << ": cannot read dataset '" << name << "'");
  return value;
}

void Hdf5File::write(const std::string& name, const Tensor& tensor) {
  const Tensor values = tensor.to(Device::cpu()).to_f32();  // a device's tensors are written from a host copy
  const std::vector<hsize_t> dims(values.shape().begin(), values.shape().end());
  Handle space(dims.empty() ? H5Screate(H5S_SCALAR) : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
               H5Sclose);
  Handle links(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
  H5Pset_create_intermediate_group(links, 1);
  Handle d(H5Dcreate2(id_, name.c_str(), H5T_IEEE_F32LE, space, links, H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
  VDIT_CHECK(d >= 0, path_ << ": cannot create dataset '" << name << "'");
  VDIT_CHECK(H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()) >= 0,
             path_ << ": cannot write dataset '" << name << "'");
}

bool Hdf5File::has_attribute(const std::string& name, const std::string& object) const {
  if (object != "/") {
    if (!has(object)) return false;
    check_names_along(object);
  }
  return H5Aexists_by_name(id_, object.c_str(), name.c_str(), H5P_DEFAULT) > 0;
}

namespace {

// "'name'" for a root attribute, "'name' of '/group'" for a group's, for messages.
std::string attribute_label(const std::string& object, const std::string& name) {
  return "'" + name + "'" + (object == "/" ? "" : " of '" + object + "'");
}

// Opens attribute `name` of `object` in `file`, naming both when it is absent.
hid_t open_attribute(hid_t file, const std::string& path, const std::string& object, const std::string& name) {
  VDIT_CHECK(H5Aexists_by_name(file, object.c_str(), name.c_str(), H5P_DEFAULT) > 0,
             path << ": no attribute " << attribute_label(object, name));
  return H5Aopen_by_name(file, object.c_str(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT);
}

// The number of values attribute `a` holds, checked: a scalar or a list of at most
// `max_count` values (not a null dataspace or a matrix).
hssize_t attribute_count(hid_t a, const std::string& where, hssize_t max_count) {
  Handle space(H5Aget_space(a), H5Sclose);
  const Shape shape = checked_extents(space, where);
  VDIT_CHECK(shape.size() <= 1 && numel(shape) <= max_count,
             where << " has shape " << to_string(shape) << ", expected "
                   << (max_count == 1 ? "a single value" : "a list of at most " + std::to_string(max_count) + " values"));
  return static_cast<hssize_t>(numel(shape));
}

template <typename T>
std::vector<T> read_numeric_attribute(hid_t file, const std::string& path, const std::string& name, hid_t mem_type,
                                      hssize_t max_count) {
  const std::string where = path + ": attribute '" + name + "'";
  Handle a(open_attribute(file, path, "/", name), H5Aclose);
  Handle type(H5Aget_type(a), H5Tclose);
  const H5T_class_t cls = H5Tget_class(type);
  VDIT_CHECK(cls == H5T_INTEGER || cls == H5T_FLOAT, where << " is " << class_name(cls) << ", expected a number");
  std::vector<T> values(static_cast<size_t>(attribute_count(a, where, max_count)));
  VDIT_CHECK(H5Aread(a, mem_type, values.data()) >= 0, where << ": cannot be read as a number");
  return values;
}

void write_attribute(hid_t file, const std::string& path, const std::string& object, const std::string& name,
                     hid_t file_type, hid_t mem_type, const void* data, const std::vector<hsize_t>& dims) {
  if (H5Aexists_by_name(file, object.c_str(), name.c_str(), H5P_DEFAULT) > 0)
    H5Adelete_by_name(file, object.c_str(), name.c_str(), H5P_DEFAULT);
  Handle space(dims.empty() ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, dims.data(), nullptr), H5Sclose);
  Handle a(H5Acreate_by_name(file, object.c_str(), name.c_str(), file_type, space, H5P_DEFAULT, H5P_DEFAULT,
                             H5P_DEFAULT),
           H5Aclose);
  VDIT_CHECK(a >= 0 && H5Awrite(a, mem_type, data) >= 0,
             path << ": cannot write attribute " << attribute_label(object, name));
}

}  // namespace

int64_t Hdf5File::read_int(const std::string& name) const {
  return read_numeric_attribute<int64_t>(id_, path_, name, H5T_NATIVE_INT64, 1)[0];
}

std::vector<int64_t> Hdf5File::read_ints(const std::string& name) const {
  return read_numeric_attribute<int64_t>(id_, path_, name, H5T_NATIVE_INT64, kMaxAttributeValues);
}

double Hdf5File::read_double(const std::string& name) const {
  return read_numeric_attribute<double>(id_, path_, name, H5T_NATIVE_DOUBLE, 1)[0];
}

std::string Hdf5File::read_string(const std::string& name, const std::string& object) const {
  const std::string where = path_ + ": attribute " + attribute_label(object, name);
  check_names_along(object);
  Handle a(open_attribute(id_, path_, object, name), H5Aclose);
  Handle type(H5Aget_type(a), H5Tclose);
  const H5T_class_t cls = H5Tget_class(type);
  VDIT_CHECK(cls == H5T_STRING, where << " is " << class_name(cls) << ", expected a string");
  // One string: an array of them would overrun the single buffer read into below.
  attribute_count(a, where, 1);
  if (H5Tis_variable_str(type) > 0) {
    char* value = nullptr;
    Handle mem(H5Tget_native_type(type, H5T_DIR_ASCEND), H5Tclose);
    VDIT_CHECK(H5Aread(a, mem, &value) >= 0, where << ": cannot be read");
    std::string out = value ? value : "";
    H5free_memory(value);
    return out;
  }
  const size_t size = H5Tget_size(type);
  VDIT_CHECK(size > 0 && size <= kMaxStringBytes, where << " is a string of " << size << " bytes, expected at most "
                                                       << kMaxStringBytes);
  std::string out(size, '\0');
  VDIT_CHECK(H5Aread(a, type, out.data()) >= 0, where << ": cannot be read");
  out.resize(out.find('\0') == std::string::npos ? out.size() : out.find('\0'));
  return out;
}

void Hdf5File::write_int(const std::string& name, int64_t value) {
  write_attribute(id_, path_, "/", name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value, {});
}

void Hdf5File::write_ints(const std::string& name, const std::vector<int64_t>& values) {
  write_attribute(id_, path_, "/", name, H5T_STD_I64LE, H5T_NATIVE_INT64, values.data(), {values.size()});
}

void Hdf5File::write_double(const std::string& name, double value) {
  write_attribute(id_, path_, "/", name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value, {});
}

void Hdf5File::write_string(const std::string& name, const std::string& value, const std::string& object) {
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type, std::max<size_t>(value.size(), 1));
  write_attribute(id_, path_, object, name, type, type, value.c_str(), {});
}

void Hdf5File::close() {
  const hid_t id = id_;
  id_ = -1;
  VDIT_CHECK(H5Fclose(id) >= 0, path_ << ": cannot close the HDF5 file (its last writes may not have reached the disk)");
}

void write_hdf5_atomically(const std::string& path, const std::function<void(Hdf5File&)>& fill) {
  write_file_atomically(path, [&](const std::string& partial) {
    Hdf5File file(partial, Hdf5File::Mode::Create);
    fill(file);
    file.close();
  });
}

}  // namespace vdit
