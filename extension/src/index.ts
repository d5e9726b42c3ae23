/**
 * JupyterLab 4 / Notebook 7 MIME renderer for rootfs-kernel comparisons
 * (application/vnd.rootfs-kernel.compare+json): an interactive view rebuilt from the
 * saved output alone, so a notebook reopened without a kernel or widget state still
 * shows sortable, filterable comparisons.
 */

import { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { Widget } from '@lumino/widgets';

import { LIMITS_MIME_TYPE, LimitsView, checkLimits } from './limits';
import { MIME_TYPE, checkPayload } from './payload';
import { TREE_MIME_TYPE, TreeView, checkTree } from './tree';
import { CompareView, errorView } from './view';

/**
 * Lower ranks win. text/html is 50; ipywidgets registers its widget-view renderer at -10
 * (unsafe: skipped in untrusted notebooks). A rank cannot depend on whether a widget
 * model exists, and a notebook saved by its author is trusted when reopened, so a rank
 * above -10 would leave exactly that case showing "model not found". Our view carries
 * every feature of the kernel's widget without needing a kernel, so it goes first.
 */
export const RANK = -20;

class CompareRenderer extends Widget implements IRenderMime.IRenderer {
  constructor(options: IRenderMime.IRendererOptions) {
    super();
    this.mimeType = options.mimeType;
    this.addClass('rfk-renderer');
  }

  renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    let content: HTMLElement;
    try {
      const data = model.data[this.mimeType];
      content =
        this.mimeType === TREE_MIME_TYPE
          ? new TreeView(checkTree(data)).node
          : this.mimeType === LIMITS_MIME_TYPE
            ? new LimitsView(checkLimits(data)).node
            : new CompareView(checkPayload(data)).node;
    } catch (error) {
      const text = model.data['text/plain'];
      content = errorView(error, typeof text === 'string' ? text : undefined);
    }
    this.node.replaceChildren(content);
    return Promise.resolve();
  }

  readonly mimeType: string;
}

export const rendererFactory: IRenderMime.IRendererFactory = {
  safe: true,
  mimeTypes: [MIME_TYPE, TREE_MIME_TYPE, LIMITS_MIME_TYPE],
  defaultRank: RANK,
  createRenderer: options => new CompareRenderer(options)
};

const extension: IRenderMime.IExtension = {
  id: 'rootfs-kernel-renderer:compare',
  description: 'Renders rootfs-kernel comparison views from saved notebook outputs.',
  rendererFactory,
  rank: RANK,
  dataType: 'json'
};

export default extension;
