#include "data/hdf5_file.h"

#include <hdf5.h>

#include <algorithm>
#include <cstdio>

#include "autograd/check.h"

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

// HDF5 prints a stack of errors to stderr by default; ours name the file and object instead.
void silence_hdf5() {
  static const bool once = [] { return H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr) >= 0; }();
  (void)once;
}

Shape space_shape(hid_t space) {
  const int rank = H5Sget_simple_extent_ndims(space);
  std::vector<hsize_t> dims(std::max(rank, 0));
  H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  return Shape(dims.begin(), dims.end());
}

}  // namespace

Hdf5File::Hdf5File(const std::string& path, Mode mode) : path_(path) {
  silence_hdf5();
  if (mode == Mode::Read) {
    VDIT_CHECK(H5Fis_hdf5(path.c_str()) > 0, path << ": not a readable HDF5 file");
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
    if (!prefix.empty() && prefix != "/" && H5Lexists(id_, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    if (pos == std::string::npos) return true;
  }
}

namespace {

// Names of the objects of `type` directly inside `group`, sorted.
std::vector<std::string> children(hid_t file, const std::string& path, const std::string& group, H5O_type_t type) {
  Handle g(H5Gopen2(file, group.c_str(), H5P_DEFAULT), H5Gclose);
  VDIT_CHECK(g >= 0, path << ": no group '" << group << "'");
  struct Search {
    H5O_type_t type;
    std::vector<std::string> names;
  } search{type, {}};
  H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, nullptr,
              [](hid_t loc, const char* name, const H5L_info_t*, void* out) -> herr_t {
                auto* s = static_cast<Search*>(out);
                H5O_info_t info;
                if (H5Oget_info_by_name2(loc, name, &info, H5O_INFO_BASIC, H5P_DEFAULT) >= 0 && info.type == s->type)
                  s->names.push_back(name);
                return 0;
              },
              &search);
  std::sort(search.names.begin(), search.names.end());
  return search.names;
}

}  // namespace

std::vector<std::string> Hdf5File::datasets(const std::string& group) const {
  return children(id_, path_, group, H5O_TYPE_DATASET);
}

std::vector<std::string> Hdf5File::groups(const std::string& group) const {
  return children(id_, path_, group, H5O_TYPE_GROUP);
}

Shape Hdf5File::shape(const std::string& name) const {
  VDIT_CHECK(has(name), path_ << ": no dataset '" << name << "'");
  Handle d(H5Dopen2(id_, name.c_str(), H5P_DEFAULT), H5Dclose);
  VDIT_CHECK(d >= 0, path_ << ": '" << name << "' is not a dataset");
  Handle space(H5Dget_space(d), H5Sclose);
  return space_shape(space);
}

Tensor Hdf5File::read(const std::string& name) const {
  VDIT_CHECK(has(name), path_ << ": no dataset '" << name << "'");
  Handle d(H5Dopen2(id_, name.c_str(), H5P_DEFAULT), H5Dclose);
  VDIT_CHECK(d >= 0, path_ << ": '" << name << "' is not a dataset");
  Handle type(H5Dget_type(d), H5Tclose);
  const H5T_class_t cls = H5Tget_class(type);
  VDIT_CHECK(cls == H5T_FLOAT || cls == H5T_INTEGER, path_ << ": dataset '" << name << "' is not numeric");
  Handle space(H5Dget_space(d), H5Sclose);
  Tensor out = Tensor::empty(space_shape(space));
  VDIT_CHECK(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()) >= 0,
             path_ << ": cannot read dataset '" << name << "'");
  return out;
}

void Hdf5File::write(const std::string& name, const Tensor& tensor) {
  const Tensor values = tensor.to_f32();
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

template <typename T>
std::vector<T> read_numeric_attribute(hid_t file, const std::string& path, const std::string& name, hid_t mem_type) {
  Handle a(open_attribute(file, path, "/", name), H5Aclose);
  Handle space(H5Aget_space(a), H5Sclose);
  const hssize_t n = H5Sget_simple_extent_npoints(space);
  std::vector<T> values(std::max<hssize_t>(n, 0));
  VDIT_CHECK(H5Aread(a, mem_type, values.data()) >= 0, path << ": attribute '" << name << "' is not numeric");
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
  const std::vector<int64_t> v = read_ints(name);
  VDIT_CHECK(v.size() == 1, path_ << ": attribute '" << name << "' is not a single number");
  return v[0];
}

std::vector<int64_t> Hdf5File::read_ints(const std::string& name) const {
  return read_numeric_attribute<int64_t>(id_, path_, name, H5T_NATIVE_INT64);
}

double Hdf5File::read_double(const std::string& name) const {
  const std::vector<double> v = read_numeric_attribute<double>(id_, path_, name, H5T_NATIVE_DOUBLE);
  VDIT_CHECK(v.size() == 1, path_ << ": attribute '" << name << "' is not a single number");
  return v[0];
}

std::string Hdf5File::read_string(const std::string& name, const std::string& object) const {
  Handle a(open_attribute(id_, path_, object, name), H5Aclose);
  Handle type(H5Aget_type(a), H5Tclose);
  const std::string label = attribute_label(object, name);
  VDIT_CHECK(H5Tget_class(type) == H5T_STRING, path_ << ": attribute " << label << " is not a string");
  if (H5Tis_variable_str(type) > 0) {
    char* value = nullptr;
    Handle mem(H5Tget_native_type(type, H5T_DIR_ASCEND), H5Tclose);
    VDIT_CHECK(H5Aread(a, mem, &value) >= 0, path_ << ": cannot read attribute " << label);
    std::string out = value ? value : "";
    H5free_memory(value);
    return out;
  }
  std::string out(H5Tget_size(type), '\0');
  VDIT_CHECK(H5Aread(a, type, out.data()) >= 0, path_ << ": cannot read attribute " << label);
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

void write_hdf5_atomically(const std::string& path, const std::function<void(Hdf5File&)>& fill) {
  const std::string partial = path + ".partial";
  try {
    Hdf5File file(partial, Hdf5File::Mode::Create);
    fill(file);
  } catch (...) {
    std::remove(partial.c_str());
    throw;
  }
  VDIT_CHECK(std::rename(partial.c_str(), path.c_str()) == 0, path << ": cannot rename " << partial << " into place");
}

}  // namespace vdit
