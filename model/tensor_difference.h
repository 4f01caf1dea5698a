// How far one tensor is from another, as one number: what the backend checks and the
// attention benchmark report.
#pragma once

#include "model/tensor.h"

namespace xcomp {

// max |got - want| / max |want| over two F32 host tensors with the same element count (the
// plain max |got - want| when want is all zeros; infinity on a size mismatch or a NaN).
double relative_max_difference(const Tensor& got, const Tensor& want);

// ||got - want|| / ||want|| (Euclidean norms) over two F32 host tensors with the same
// element count, on the same terms: how far a whole gradient's direction and size moved,
// which one outlying element does not dominate as it does the max above.
double relative_norm_difference(const Tensor& got, const Tensor& want);

}  // namespace xcomp
