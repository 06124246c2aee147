/**
 * tessera: chunked bioimage stores (OME-Zarr, Zarr v3 with sharding) into
 * tensors. Open an image, build a lazy query, collect a strided view over
 * native memory.
 *
 * ```ts
 * import { open } from "./mod.ts";
 * using img = await open("sample.ome.zarr");
 * using view = await img.scan().select({ t: 0, z: [10, 20] }).cast("float32").collect();
 * view.data(); // Float32Array over native memory
 * ```
 * @module
 */

export { type Image, open, type OpenOptions } from "./src/image.ts";
export {
  type ArrayInfo,
  type ImageInfo,
  info,
  type LevelSummary,
  type Member,
  type NodeInfo,
  type PlateInfo,
  type PlateWell,
  type WellInfo,
} from "./src/info.ts";
export type { AxisSelection, CollectOptions, Plan, Query, Selection } from "./src/query.ts";
export { fromDLPack, TensorView } from "./src/tensor_view.ts";
export {
  type BatchOptions,
  BatchView,
  type TileOptions,
  type TileShape,
  TileView,
} from "./src/iterate.ts";
export {
  createArray,
  type CreateArrayOptions,
  type WriteOptions,
  ZarrArrayWriter,
} from "./src/zarr/create.ts";
export { createOmeZarr, type OmeZarrOptions, OmeZarrWriter, writeOmeZarr } from "./src/ome_zarr.ts";
export type { Device, DLPackOptions, ViewSelection } from "./src/tensor_view.ts";
export type { AnyTypedArray, DType, FillValue, TypedArrayFor } from "./src/dtype.ts";
export type { Axis, Channel, LevelInfo } from "./src/ngff.ts";
export type { Counters } from "./src/native.ts";
export { ArrowCExport, type ArrowOptions, type ArrowTensorLayout } from "./src/arrow.ts";
export { type ArrowImport, type ArrowImportOptions, fromArrowC } from "./src/arrow_import.ts";
export { OmeArrowImage, type OmeArrowRecordInfo, openOmeArrow } from "./src/omearrow.ts";
export {
  type ConvertToOmeArrowOptions,
  type ConvertToOmeZarrOptions,
  omeArrowToOmeZarr,
  type OmeArrowWriteOptions,
  omeZarrToOmeArrow,
  writeOmeArrow,
} from "./src/omearrow_write.ts";
export {
  type BoxSelection,
  Pipeline,
  pipeline,
  PipelineBatch,
  type PipelineConfig,
  type PipelineDType,
  type PipelineStats,
  type SampleRequest,
  type StageStats,
} from "./src/pipeline.ts";
export type { CudaCounters } from "./src/batch_executor.ts";
export {
  BudgetExceeded,
  CudaError,
  DecodeError,
  DtypeMismatch,
  InvalidArgument,
  NotFound,
  PoolStarved,
  Shutdown,
  StorageError,
  TesseraError,
} from "./src/errors.ts";
// Display, thumbnails, conversion and progress (notebooks, the CLI).
export { thumbnail, type ThumbnailOptions } from "./src/thumbnail.ts";
export type { RenderedPng, RenderOptions } from "./src/render.ts";
export type { MediaBundle } from "./src/display.ts";
export {
  convert,
  type Converter,
  CONVERTERS,
  type ConvertOptions,
  type ConvertProgress,
  type ConvertResult,
  omeZarrToSharded,
} from "./src/convert.ts";
export { omeArrowToOmeZarrConverter, omeZarrToOmeArrowConverter } from "./src/omearrow_convert.ts";
export { ProgressBar, type ProgressBarOptions, type ProgressSink } from "./src/progress_bar.ts";
// reliability: cancellation and leak checks
export { Aborted } from "./src/errors.ts";
export { liveNativeBytes } from "./src/native.ts";
// Remote stores (S3, HTTP) and the shard-index cache.
export {
  configureIndexCache,
  type IndexCacheStats,
  indexCacheStats,
  invalidate,
  type RemoteOptions,
} from "./src/remote.ts";
