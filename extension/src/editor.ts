/**
 * C in `%%c` cells: a cell of a rootfs notebook whose first line is `%%c` is C source
 * (the kernel compiles it), so its editor highlights C, the way IPython's cell magics
 * switch the language of theirs. Every other cell keeps the notebook's language (shell).
 *
 * The notebook sets each code cell's MIME type from the kernel's language_info (when the
 * cell is made and whenever that metadata changes); this plugin sets it again after both.
 */

import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICellModel } from '@jupyterlab/cells';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';

import { cellLanguage } from './language';

function isRootfs(panel: NotebookPanel): boolean {
  const spec = panel.model?.getMetadata('kernelspec') as { name?: string } | undefined;
  return typeof spec?.name === 'string' && spec.name.startsWith('rootfs');
}

function follow(panel: NotebookPanel): void {
  const notebook = panel.content;
  const update = (model: ICellModel): void => {
    if (model.type !== 'code' || !isRootfs(panel)) {
      return;
    }
    const wanted = cellLanguage(model.sharedModel.getSource()) ?? notebook.codeMimetype;
    if (model.mimeType !== wanted) {
      model.mimeType = wanted;
    }
  };
  const watched = new WeakSet<ICellModel>();
  const watch = (model: ICellModel): void => {
    if (!watched.has(model)) {
      watched.add(model);
      model.contentChanged.connect(() => update(model));
      model.mimeTypeChanged.connect(() => update(model));
    }
    update(model);
  };
  const all = (): void => {
    const cells = notebook.model?.cells;
    for (let i = 0; cells && i < cells.length; i++) {
      watch(cells.get(i));
    }
  };
  const connect = (): void => {
    const model = notebook.model;
    if (!model) {
      return;
    }
    model.cells.changed.connect(all);
    // The notebook resets every code cell's MIME type when language_info changes.
    model.metadataChanged.connect(all);
    all();
  };
  notebook.modelChanged.connect(connect);
  connect();
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'rootfs-kernel-renderer:c-cells',
  description: 'Highlights %%c cells of rootfs notebooks as C.',
  autoStart: true,
  requires: [INotebookTracker],
  activate: (_app: JupyterFrontEnd, tracker: INotebookTracker) => {
    tracker.forEach(follow);
    tracker.widgetAdded.connect((_, panel) => follow(panel));
  }
};

export default plugin;
