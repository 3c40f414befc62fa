/**
 * The part of BokehJS's prebuilt ES module (`@bokeh/bokehjs`, the `bokeh`
 * core bundle: models, plotting, embedding; no widgets, tables, WebGL or
 * MathJax) that timelines.ts uses.
 */
declare module '@bokeh/bokehjs/build/js/bokeh.esm.min.js' {
  /** A model of a bokeh document: its properties, and a signal when any of them changes. */
  export interface IBokehModel {
    readonly change: { connect(slot: () => void): boolean };
  }
  export interface IBokehRange extends IBokehModel {
    start: number;
    end: number;
  }
  export interface IBokehView {
    readonly model: {
      readonly document: {
        get_model_by_name(name: string): IBokehModel | null;
      } | null;
    };
    remove(): void;
  }
  const Bokeh: {
    readonly version: string;
    readonly embed: {
      embed_item(
        item: unknown,
        target: HTMLElement
      ): Promise<{ readonly roots: IBokehView[] }>;
    };
  };
  export default Bokeh;
}
