#include "comm/nccl_communicator.h"

#include <glog/logging.h>

#include <algorithm>
#include <cstring>

#include "comm/mpi_communicator.h"
#include "comm/nccl_check.h"
#include "comm/nccl_scale.h"

namespace xcomp {

namespace {

// The GPU of this rank; CHECKs that there is one for every rank of this node (NCCL
// refuses two ranks of one communicator on one GPU, with a less direct message).
int pick_device(const ProcessPlacement& placement) {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  CHECK(status == cudaSuccess && count > 0) << "the NCCL communicator needs a GPU, but none is usable ("
                                            << (status == cudaSuccess ? "no device found" : cudaGetErrorString(status))
                                            << ")";
  CHECK_LE(placement.local_size, count) << placement.local_size << " ranks on this node but " << count
                                        << " GPU(s): NCCL needs one GPU per rank (start at most " << count
                                        << " ranks per node)";
  return placement.local_rank % count;
}

}  // namespace

NcclCommunicator::NcclCommunicator(std::unique_ptr<Communicator> host, const ProcessPlacement& placement,
                                   size_t bucket_elements)
    : host_(std::move(host)), bucket_elements_(bucket_elements) {
  CHECK(host_ != nullptr) << "NcclCommunicator needs a host communicator";
  CHECK_GT(bucket_elements_, 0u);
  CHECK_EQ(host_->rank(), placement.rank) << "host communicator and placement disagree";
  CHECK_EQ(host_->world_size(), placement.world_size) << "host communicator and placement disagree";
  device_ = pick_device(placement);
  XCOMP_COMM_CUDA_CHECK(cudaSetDevice(device_));

  ncclUniqueId id;
  std::memset(&id, 0, sizeof id);
  if (rank() == 0) XCOMP_NCCL_CHECK(ncclGetUniqueId(&id));
  host_->broadcast_bytes(&id, sizeof id, 0);
  // Blocks until every rank has joined.
  XCOMP_NCCL_CHECK(ncclCommInitRank(&comm_, world_size(), id, rank()));

  XCOMP_COMM_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  XCOMP_COMM_CUDA_CHECK(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming));
  XCOMP_COMM_CUDA_CHECK(cudaEventCreateWithFlags(&done_, cudaEventDisableTiming));
  VLOG(1) << "NCCL communicator: rank " << rank() << " of " << world_size() << " on device " << device_ << ", NCCL "
          << nccl_runtime_version();
}

NcclCommunicator::~NcclCommunicator() {
  XCOMP_COMM_CUDA_CHECK(cudaSetDevice(device_));
  XCOMP_COMM_CUDA_CHECK(cudaStreamSynchronize(stream_));
  XCOMP_NCCL_CHECK(ncclCommDestroy(comm_));
  XCOMP_COMM_CUDA_CHECK(cudaEventDestroy(done_));
  XCOMP_COMM_CUDA_CHECK(cudaEventDestroy(ready_));
  XCOMP_COMM_CUDA_CHECK(cudaStreamDestroy(stream_));
}

void NcclCommunicator::enqueue(float* device_data, size_t count, ReduceOp op) {
  const int world = world_size();
  const float scale = 1.0f / static_cast<float>(world);  // as MpiCommunicator
  for (size_t begin = 0; begin < count; begin += bucket_elements_) {
    const size_t n = std::min(bucket_elements_, count - begin);
    float* bucket = device_data + begin;
    XCOMP_NCCL_CHECK(ncclAllReduce(bucket, bucket, n, ncclFloat32, ncclSum, comm_, stream_));
    // Per bucket, so a bucket is final as soon as its own work is done.
    if (op == ReduceOp::kAverage && world > 1) scale_on_device(bucket, n, scale, stream_);
  }
}

void NcclCommunicator::all_reduce_async(float* device_data, size_t count, ReduceOp op, cudaStream_t after) {
  if (count == 0) return;
  CHECK(device_data != nullptr) << "NcclCommunicator::all_reduce_async: null buffer of " << count << " floats";
  XCOMP_COMM_CUDA_CHECK(cudaSetDevice(device_));
  XCOMP_COMM_CUDA_CHECK(cudaEventRecord(ready_, after));
  XCOMP_COMM_CUDA_CHECK(cudaStreamWaitEvent(stream_, ready_, 0));
  enqueue(device_data, count, op);
}

void NcclCommunicator::wait(cudaStream_t stream) {
  XCOMP_COMM_CUDA_CHECK(cudaSetDevice(device_));
  XCOMP_COMM_CUDA_CHECK(cudaEventRecord(done_, stream_));
  XCOMP_COMM_CUDA_CHECK(cudaStreamWaitEvent(stream, done_, 0));
}

void NcclCommunicator::synchronize() {
  XCOMP_COMM_CUDA_CHECK(cudaSetDevice(device_));
  XCOMP_COMM_CUDA_CHECK(cudaStreamSynchronize(stream_));
  ncclResult_t async_error = ncclSuccess;
  XCOMP_NCCL_CHECK(ncclCommGetAsyncError(comm_, &async_error));
  if (async_error != ncclSuccess)
    nccl_call_failed(async_error, "a queued ncclAllReduce (ncclCommGetAsyncError)", __FILE__, __LINE__);
}

void NcclCommunicator::all_reduce(float* device_data, size_t count, ReduceOp op) {
  if (count == 0) return;
  CHECK(device_data != nullptr) << "NcclCommunicator::all_reduce: null buffer of " << count << " floats";
  XCOMP_COMM_CUDA_CHECK(cudaSetDevice(device_));
  // The buffer may have been written on any stream of this device: let all of them finish.
  XCOMP_COMM_CUDA_CHECK(cudaDeviceSynchronize());
  enqueue(device_data, count, op);
  synchronize();
}

std::unique_ptr<NcclCommunicator> nccl_world_communicator(size_t bucket_elements) {
  const ProcessPlacement placement = mpi_is_running() ? mpi_world_placement() : ProcessPlacement{};
  return std::make_unique<NcclCommunicator>(world_communicator(), placement, bucket_elements);
}

int nccl_runtime_version() {
  int version = 0;
  XCOMP_NCCL_CHECK(ncclGetVersion(&version));
  return version;
}

}  // namespace xcomp
